// Results in an S3-compatible object store (AWS S3, MinIO, Ceph RGW,
// s3rver): objects s3://BUCKET/PREFIX<sha256>, written and read with
// libcurl's AWS Signature V4, and presigned GET URLs (query-string SigV4) so
// clients fetch results from the store rather than through a front-end.
#pragma once
#include <ctime>
#include <optional>
#include <string>

namespace vg {

struct S3Location {
  std::string bucket, prefix;  // prefix ends with '/' unless empty
  std::string endpoint;        // scheme://host[:port], path-style requests
  std::string region = "us-east-1";
  std::string access_key, secret_key;
};

// s3://BUCKET[/PREFIX] with an endpoint ("" = https://s3.REGION.amazonaws.com)
// and the credentials of $AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY.
// Throws invalid_argument with a sentence.
S3Location parse_s3_url(const std::string& url, const std::string& endpoint, const std::string& region);

// A presigned URL (AWS SigV4 query authentication, UNSIGNED-PAYLOAD, host the
// only signed header) for `method` on scheme://host/path; amz_date is
// YYYYMMDDTHHMMSSZ.
std::string sigv4_presign(const std::string& method, const std::string& scheme_host, const std::string& path,
                          const std::string& region, const std::string& access_key, const std::string& secret_key,
                          const std::string& amz_date, int expires_s);

class S3Store {
 public:
  explicit S3Store(S3Location loc);
  // Throws io_error naming the object and the store's answer.
  void put(const std::string& sha256, const std::string& bytes, const std::string& mime) const;
  // nullopt when the object does not exist; throws io_error on other failures.
  std::optional<std::string> get(const std::string& sha256) const;
  std::string presigned_get(const std::string& sha256, int expires_s, std::time_t now = std::time(nullptr)) const;
  const S3Location& location() const { return loc_; }

 private:
  std::string object_path(const std::string& sha256) const;  // /BUCKET/PREFIXsha
  S3Location loc_;
};

}  // namespace vg
