#include "test_pki.h"

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <stdexcept>

namespace waterline::kube::testing {
namespace {

struct Deleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter>;
using CertPtr = std::unique_ptr<X509, Deleter>;
using BioPtr = std::unique_ptr<BIO, Deleter>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter>;

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test pki: ") + what);
}

KeyPtr newKey() {
  KeyPtr k(EVP_EC_gen("P-256"));
  check(k != nullptr, "EVP_EC_gen");
  return k;
}

void addExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  check(ext != nullptr, "X509V3_EXT_conf_nid");
  check(X509_add_ext(cert, ext.get(), -1) == 1, "X509_add_ext");
}

CertPtr newCert(EVP_PKEY* key, const std::string& cn, const std::string& org, X509* issuer,
                EVP_PKEY* issuerKey, long serial) {
  CertPtr c(X509_new());
  check(c != nullptr, "X509_new");
  X509_set_version(c.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(c.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(c.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(c.get()), 7L * 24 * 3600);
  X509_set_pubkey(c.get(), key);
  X509_NAME* name = X509_get_subject_name(c.get());
  if (!org.empty())
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(org.c_str()), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(c.get(), issuer ? X509_get_subject_name(issuer) : name);
  return c;
}

void sign(X509* cert, EVP_PKEY* key) { check(X509_sign(cert, key, EVP_sha256()) > 0, "X509_sign"); }

std::string certPem(X509* c) {
  BioPtr b(BIO_new(BIO_s_mem()));
  check(PEM_write_bio_X509(b.get(), c) == 1, "PEM_write_bio_X509");
  char* data = nullptr;
  long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string keyPem(EVP_PKEY* k) {
  BioPtr b(BIO_new(BIO_s_mem()));
  check(PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "PEM_write_bio_PrivateKey");
  char* data = nullptr;
  long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

}  // namespace

TestPki makeTestPki(const std::string& clientCN, const std::string& clientOrg) {
  static long serial = 1000;
  TestPki pki;

  KeyPtr caKey = newKey();
  CertPtr ca = newCert(caKey.get(), "waterline-unit-ca", "", nullptr, nullptr, ++serial);
  addExt(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE");
  addExt(ca.get(), ca.get(), NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature");
  addExt(ca.get(), ca.get(), NID_subject_key_identifier, "hash");
  sign(ca.get(), caKey.get());
  pki.ca = {certPem(ca.get()), keyPem(caKey.get())};

  KeyPtr srvKey = newKey();
  CertPtr srv = newCert(srvKey.get(), "localhost", "", ca.get(), caKey.get(), ++serial);
  addExt(srv.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE");
  addExt(srv.get(), ca.get(), NID_key_usage, "critical,digitalSignature,keyEncipherment");
  addExt(srv.get(), ca.get(), NID_ext_key_usage, "serverAuth");
  addExt(srv.get(), ca.get(), NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
  sign(srv.get(), caKey.get());
  pki.server = {certPem(srv.get()), keyPem(srvKey.get())};

  KeyPtr cliKey = newKey();
  CertPtr cli = newCert(cliKey.get(), clientCN, clientOrg, ca.get(), caKey.get(), ++serial);
  addExt(cli.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE");
  addExt(cli.get(), ca.get(), NID_key_usage, "critical,digitalSignature,keyEncipherment");
  addExt(cli.get(), ca.get(), NID_ext_key_usage, "clientAuth");
  sign(cli.get(), caKey.get());
  pki.client = {certPem(cli.get()), keyPem(cliKey.get())};
  return pki;
}

}  // namespace waterline::kube::testing
