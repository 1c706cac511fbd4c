#include "artifacts/s3_store.h"

#include <openssl/hmac.h>

#include <cstdlib>

#include "core/error.h"
#include "core/hash.h"
#include "hub/http.h"

namespace vg {

namespace {

std::string hmac(const std::string& key, const std::string& msg) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(msg.data()),
       msg.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string hex(const std::string& bytes) { return to_hex(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()); }

// SigV4's URI encoding: unreserved characters kept, '/' kept in paths.
std::string aws_encode(const std::string& s, bool keep_slash) { return hub::url_quote(s, keep_slash); }

}  // namespace

S3Location parse_s3_url(const std::string& url, const std::string& endpoint, const std::string& region) {
  if (url.rfind("s3://", 0) != 0 || url.size() == 5)
    fail(ErrorCode::kInvalidArgument, "--artifacts '" + url + "' is not s3://BUCKET[/PREFIX]");
  S3Location loc;
  const std::string rest = url.substr(5);
  const size_t slash = rest.find('/');
  loc.bucket = rest.substr(0, slash);
  if (slash != std::string::npos) loc.prefix = rest.substr(slash + 1);
  if (!loc.prefix.empty() && loc.prefix.back() != '/') loc.prefix += '/';
  if (loc.bucket.empty() || loc.bucket.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-") != std::string::npos)
    fail(ErrorCode::kInvalidArgument, "S3 bucket '" + loc.bucket + "' is not a valid bucket name (lower-case letters, digits, '.', '-')");
  if (loc.prefix.find("..") != std::string::npos) fail(ErrorCode::kInvalidArgument, "an S3 prefix must not contain '..'");
  if (!region.empty()) loc.region = region;
  loc.endpoint = endpoint.empty() ? "https://s3." + loc.region + ".amazonaws.com" : endpoint;
  while (!loc.endpoint.empty() && loc.endpoint.back() == '/') loc.endpoint.pop_back();
  if (loc.endpoint.rfind("http://", 0) != 0 && loc.endpoint.rfind("https://", 0) != 0)
    fail(ErrorCode::kInvalidArgument, "--s3-endpoint '" + endpoint + "' must start with http:// or https://");
  const char* key = std::getenv("AWS_ACCESS_KEY_ID");
  const char* secret = std::getenv("AWS_SECRET_ACCESS_KEY");
  if (!key || !*key || !secret || !*secret)
    fail(ErrorCode::kInvalidArgument, "S3 results need credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
  loc.access_key = key;
  loc.secret_key = secret;
  return loc;
}

std::string sigv4_presign(const std::string& method, const std::string& scheme_host, const std::string& path,
                          const std::string& region, const std::string& access_key, const std::string& secret_key,
                          const std::string& amz_date, int expires_s) {
  const std::string date = amz_date.substr(0, 8);
  const std::string scope = date + "/" + region + "/s3/aws4_request";
  const std::string host = scheme_host.substr(scheme_host.find("://") + 3);
  // query parameters in byte order of their names, as the canonical request needs them
  const std::string query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + aws_encode(access_key + "/" + scope, false) +
                            "&X-Amz-Date=" + amz_date + "&X-Amz-Expires=" + std::to_string(expires_s) +
                            "&X-Amz-SignedHeaders=host";
  const std::string uri = aws_encode(path, true);
  const std::string canonical = method + "\n" + uri + "\n" + query + "\nhost:" + host + "\n\nhost\nUNSIGNED-PAYLOAD";
  const std::string to_sign = "AWS4-HMAC-SHA256\n" + amz_date + "\n" + scope + "\n" + sha256_hex(canonical);
  std::string k = hmac("AWS4" + secret_key, date);
  k = hmac(k, region);
  k = hmac(k, "s3");
  k = hmac(k, "aws4_request");
  return scheme_host + uri + "?" + query + "&X-Amz-Signature=" + hex(hmac(k, to_sign));
}

S3Store::S3Store(S3Location loc) : loc_(std::move(loc)) {}

std::string S3Store::object_path(const std::string& sha256) const { return "/" + loc_.bucket + "/" + loc_.prefix + sha256; }

void S3Store::put(const std::string& sha256, const std::string& bytes, const std::string& mime) const {
  hub::HttpRequest req;
  req.method = "PUT";
  req.url = loc_.endpoint + object_path(sha256);
  req.body = bytes;
  req.timeout_s = 60;
  req.headers = {"Content-Type: " + mime, "x-amz-content-sha256: " + sha256_hex(bytes)};
  req.aws_sigv4 = "aws:amz:" + loc_.region + ":s3";
  req.aws_credentials = loc_.access_key + ":" + loc_.secret_key;
  auto r = hub::send_with_retries(req);
  if (r.status != 200)
    fail(ErrorCode::kIoError, "cannot store result " + sha256 + " in s3://" + loc_.bucket + "/" + loc_.prefix + " at " +
                                  loc_.endpoint + " (" + (r.status ? "HTTP " + std::to_string(r.status) : r.error) +
                                  "); check the bucket, --s3-endpoint and the credentials");
}

std::optional<std::string> S3Store::get(const std::string& sha256) const {
  hub::HttpRequest req;
  req.url = loc_.endpoint + object_path(sha256);
  req.timeout_s = 30;
  req.headers = {"x-amz-content-sha256: " + sha256_hex("")};
  req.aws_sigv4 = "aws:amz:" + loc_.region + ":s3";
  req.aws_credentials = loc_.access_key + ":" + loc_.secret_key;
  auto r = hub::send_with_retries(req);
  if (r.status == 404) return std::nullopt;
  if (r.status != 200)
    fail(ErrorCode::kIoError, "cannot read result " + sha256 + " from " + loc_.endpoint + " (" +
                                  (r.status ? "HTTP " + std::to_string(r.status) : r.error) + ")");
  return r.body;
}

std::string S3Store::presigned_get(const std::string& sha256, int expires_s, std::time_t now) const {
  char amz_date[17];
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(amz_date, sizeof amz_date, "%Y%m%dT%H%M%SZ", &tm);
  return sigv4_presign("GET", loc_.endpoint, object_path(sha256), loc_.region, loc_.access_key, loc_.secret_key, amz_date,
                       expires_s);
}

}  // namespace vg
