#pragma once
#include <string>

namespace waterline::kube {

// Identifies a REST resource (group/version/resource) and its Kind.
struct ResourceKind {
  std::string group;     // "" for core
  std::string version;   // "v1"
  std::string resource;  // plural, e.g. "pods"
  std::string kind;      // "Pod"
  bool namespaced = true;

  std::string apiVersion() const { return group.empty() ? version : group + "/" + version; }
  // Path prefix: /api/v1 or /apis/<group>/<version>
  std::string basePath() const {
    return group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
  }
  // Full collection path, e.g. /api/v1/namespaces/default/pods (ns "" = all namespaces).
  std::string collectionPath(const std::string& ns) const {
    if (namespaced && !ns.empty()) return basePath() + "/namespaces/" + ns + "/" + resource;
    return basePath() + "/" + resource;
  }
  std::string objectPath(const std::string& ns, const std::string& name) const {
    return collectionPath(ns) + "/" + name;
  }
  bool operator==(const ResourceKind&) const = default;
};

// Well-known kinds. The "typed" surface of the client is these plus the typed codecs
// of operator/api.
namespace kinds {
inline const ResourceKind Namespace{"", "v1", "namespaces", "Namespace", false};
inline const ResourceKind Node{"", "v1", "nodes", "Node", false};
inline const ResourceKind Pod{"", "v1", "pods", "Pod", true};
inline const ResourceKind Service{"", "v1", "services", "Service", true};
inline const ResourceKind ConfigMap{"", "v1", "configmaps", "ConfigMap", true};
inline const ResourceKind Secret{"", "v1", "secrets", "Secret", true};
inline const ResourceKind CoreEvent{"", "v1", "events", "Event", true};
inline const ResourceKind ServiceAccount{"", "v1", "serviceaccounts", "ServiceAccount", true};
inline const ResourceKind Deployment{"apps", "v1", "deployments", "Deployment", true};
inline const ResourceKind Lease{"coordination.k8s.io", "v1", "leases", "Lease", true};
inline const ResourceKind Event{"events.k8s.io", "v1", "events", "Event", true};
inline const ResourceKind CustomResourceDefinition{"apiextensions.k8s.io", "v1",
                                                   "customresourcedefinitions",
                                                   "CustomResourceDefinition", false};
inline const ResourceKind ResourceSlice{"resource.k8s.io", "v1", "resourceslices", "ResourceSlice", false};
inline const ResourceKind ResourceClaim{"resource.k8s.io", "v1", "resourceclaims", "ResourceClaim", true};
inline const ResourceKind CapacityPool{"waterline.dev", "v1alpha1", "capacitypools",
                                       "CapacityPool", false};
inline const ResourceKind ModelDeployment{"waterline.dev", "v1alpha1", "modeldeployments",
                                          "ModelDeployment", true};
inline const ResourceKind PTUReservation{"waterline.dev", "v1alpha1", "ptureservations",
                                         "PTUReservation", true};
inline const ResourceKind RoutingTable{"waterline.dev", "v1alpha1", "routingtables",
                                       "RoutingTable", false};
}  // namespace kinds

}  // namespace waterline::kube
