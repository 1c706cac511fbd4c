#include "core/hash.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <fstream>
#include <vector>

namespace vg {

std::string to_hex(const unsigned char* bytes, size_t n) {
  static const char* k = "0123456789abcdef";
  std::string s;
  s.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) s += k[bytes[i] >> 4], s += k[bytes[i] & 15];
  return s;
}

std::string sha256_hex(std::string_view data) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), d);
  return to_hex(d, sizeof d);
}

std::string git_blob_sha1_hex(std::string_view content) {
  std::string obj = "blob " + std::to_string(content.size());
  obj += '\0';
  obj.append(content);
  unsigned char d[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(obj.data()), obj.size(), d);
  return to_hex(d, sizeof d);
}

std::string sha256_file_hex(const std::string& path, unsigned long long offset) {
  std::ifstream f(path, std::ios::binary);
  if (!f || !f.seekg(static_cast<std::streamoff>(offset))) return "";
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 20);
  while (f) {
    f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(f.gcount()));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  return to_hex(md, len);
}

}  // namespace vg
