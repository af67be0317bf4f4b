#include "waterline/kube/client.h"

namespace waterline::kube {

Result<Json> Client::getSubresource(const ResourceKind& kind, const std::string& ns,
                                    const std::string& name, const std::string& subresource) {
  ApiError e;
  e.reason = ApiError::Reason::MethodNotAllowed;
  e.message = "getSubresource(" + kind.resource + "/" + subresource + ") is not supported by this client";
  return std::unexpected(std::move(e));
}

Result<ObjectList> listAll(Reader& reader, const ResourceKind& kind, const std::string& ns,
                           ListOptions opts) {
  ObjectList all;
  opts.continueToken.clear();
  bool first = true;
  for (;;) {
    auto page = reader.list(kind, ns, opts);
    if (!page) {
      if (!first && page.error().isGone()) {
        // The continue token expired: one full list instead (consistent, unpaginated).
        ListOptions full = opts;
        full.limit.reset();
        full.continueToken.clear();
        full.resourceVersionMatch.clear();
        full.resourceVersion.clear();
        return reader.list(kind, ns, full);
      }
      return std::unexpected(page.error());
    }
    if (first) {
      all.resourceVersion = page->resourceVersion;
      all.items = std::move(page->items);
    } else {
      all.items.insert(all.items.end(), std::make_move_iterator(page->items.begin()),
                       std::make_move_iterator(page->items.end()));
      if (!page->resourceVersion.empty()) all.resourceVersion = page->resourceVersion;
    }
    first = false;
    if (page->continueToken.empty()) break;
    opts.continueToken = page->continueToken;
    // A continuation must not repeat resourceVersion / resourceVersionMatch.
    opts.resourceVersion.clear();
    opts.resourceVersionMatch.clear();
  }
  return all;
}

}  // namespace waterline::kube
