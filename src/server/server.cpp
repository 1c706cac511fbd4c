#include "server/server.h"

#include <openssl/crypto.h>
#include <signal.h>

#include <filesystem>
#include <thread>

#include "core/error.h"
#include "io/confined_path.h"
#include "server/context.h"
#include "server/http_util.h"

namespace vg::server {

bool is_loopback_host(const std::string& h) {
  return h == "127.0.0.1" || h == "localhost" || h == "::1" || h.rfind("127.", 0) == 0;
}

struct Server::Impl {
  std::unique_ptr<Context> ctx;
  std::unique_ptr<httplib::Server> http;  // an httplib::SSLServer with --tls-cert/--tls-key
  std::unique_ptr<ConnGuard> guard;        // cuts clients too slow to send their request
  std::thread thread;
};

namespace {

bool key_matches(const std::string& given, const std::vector<std::string>& keys) {
  bool ok = false;
  for (const auto& k : keys)  // constant time per key; every key is compared
    ok |= given.size() == k.size() && CRYPTO_memcmp(given.data(), k.data(), k.size()) == 0;
  return ok;
}

std::string presented_key(const httplib::Request& req) {
  const std::string auth = req.get_header_value("Authorization");
  if (auth.rfind("Bearer ", 0) == 0) return auth.substr(7);
  if (auth.rfind("Basic ", 0) == 0) {  // A1111 clients: user:key, the password is the key
    auto dec = base64_decode(auth.substr(6));
    if (dec) return dec->substr(dec->find(':') == std::string::npos ? 0 : dec->find(':') + 1);
  }
  return req.get_header_value("X-API-Key");
}

bool public_path(const std::string& p) { return p == "/" || p == "/index.html" || p == "/health"; }

// Request fields that name files on the server take names inside the model
// folders only, never paths of their own: the refiner a served model, the
// VAE / preview VAE a folder or .safetensors in a --models-dir. Images come
// as data, never as server paths.
void confine_paths(Context& ctx, JobRequest& req) {
  GenerateParams& p = req.params;
  if (!p.init_image.empty() && !req.init_image)
    fail(ErrorCode::kInvalidArgument, "'init_image' must be image data (base64), not a path on the server");
  if (!p.mask.empty() && !req.mask) fail(ErrorCode::kInvalidArgument, "'mask' must be image data (base64), not a path on the server");
  if (!p.refiner.empty()) p.refiner = ctx.models.resolve(p.refiner).path;
  for (auto [field, value] : {std::pair<const char*, std::string*>{"vae", &p.vae}, {"preview_vae", &p.preview_vae}}) {
    if (value->empty()) continue;
    const std::string found = find_inside(ctx.opts.models_dirs, *value, {"", ".safetensors"});
    if (!found.empty()) {
      *value = found;
      continue;
    }
    if (!is_plain_name(*value))
      fail(ErrorCode::kInvalidArgument, std::string("'") + field + "' must be a name inside the server's model folders (no paths, no '..')");
    fail(ErrorCode::kFileNotFound, std::string("'") + field + "' names '" + *value +
                                       "', which is not in the server's model folders (--models-dir); put it there");
  }
}

}  // namespace

Result<std::shared_ptr<Job>> validate_and_submit(Context& ctx, JobRequest req) {
  if (auto st = guard([&] { return confine_paths(ctx, req), 0; }); !st) return st.error();
  auto entry = guard([&] { return ctx.models.resolve(req.model); });
  if (!entry) return entry.error();
  req.model = entry->id;
  auto engine = ctx.models.acquire(req.model);
  if (!engine) return engine.error();
  ImageInputs in;
  if (req.init_image) in.init_image = &*req.init_image;
  if (req.mask) in.mask = &*req.mask;
  Status st = (*engine)->validate_with(req.params, in);
  if (!st) return st.error();
  return ctx.jobs->submit(std::move(req));
}

void respond_when_done(Context& ctx, httplib::Response& res, std::shared_ptr<Job> job,
                       std::function<nlohmann::json(Job&)> body) {
  res.status = 200;
  res.set_chunked_content_provider("application/json", [&ctx, job, body](size_t, httplib::DataSink& sink) {
    bool gone = false;
    ctx.jobs->wait(*job, [&] {
      if (!sink.write(" ", 1)) gone = true;
      return gone;
    });
    if (gone) {
      if (getenv("VG_DEBUG_SERVER")) fprintf(stderr, "client gone for %s\n", job->id.c_str());
      ctx.jobs->cancel(job->id);  // the client disconnected: stop its work
      return false;
    }
    const std::string s = json_text(body(*job));
    sink.write(s.data(), s.size());
    sink.done();
    return true;
  });
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { stop(true); }

Result<std::unique_ptr<Server>> Server::create(const ServerOptions& o) {
  if (!is_loopback_host(o.host) && o.api_keys.empty())
    return Error{ErrorCode::kInvalidArgument, "refusing to listen on '" + o.host +
                                                  "' without an API key; pass --api-key or --api-key-file (or use 127.0.0.1)"};
  if (o.tls_cert.empty() != o.tls_key.empty())
    return Error{ErrorCode::kInvalidArgument, "TLS needs both --tls-cert and --tls-key (PEM files)"};
  auto impl = std::make_unique<Impl>();
  if (!o.tls_cert.empty()) {
    for (const std::string& f : {o.tls_cert, o.tls_key})
      if (!std::filesystem::exists(f))
        return Error{ErrorCode::kFileNotFound, "TLS file '" + f + "' does not exist; pass a PEM certificate and key"};
    auto tls = std::make_unique<httplib::SSLServer>(o.tls_cert.c_str(), o.tls_key.c_str());
    if (!tls->is_valid())
      return Error{ErrorCode::kInvalidArgument, "cannot use the TLS certificate '" + o.tls_cert + "' with the key '" +
                                                    o.tls_key + "' (not PEM, or they do not match)"};
    impl->http = std::move(tls);
  } else {
    impl->http = std::make_unique<httplib::Server>();
  }
  auto ctx_made = guard([&] { return std::make_unique<Context>(o); });  // --queue: Redis must answer
  if (!ctx_made) return ctx_made.error();
  impl->ctx = std::move(*ctx_made);
  Context& ctx = *impl->ctx;
  auto& s = *impl->http;
  s.set_payload_max_length(o.max_body_bytes);
  // Synchronous endpoints hold a connection thread while their job waits in
  // the queue, so the pool is sized for the queue, not for the cores.
  const size_t pool = std::max<size_t>(16, o.max_queue + 8);
  s.new_task_queue = [pool] { return new httplib::ThreadPool(pool); };
  impl->guard = std::make_unique<ConnGuard>(o.client_timeout_s);
  ConnGuard& guard = *impl->guard;
  s.set_logger([&guard](const httplib::Request& req, const httplib::Response&) { guard.finished(req); });
  s.set_pre_routing_handler([&ctx, &guard](const httplib::Request& req, httplib::Response& res) {
    guard.headers_read(req);
    const std::string origin = req.get_header_value("Origin");
    const bool allowed = !origin.empty() && std::find(ctx.opts.cors_origins.begin(), ctx.opts.cors_origins.end(),
                                                      origin) != ctx.opts.cors_origins.end();
    if (allowed) {
      res.set_header("Access-Control-Allow-Origin", origin);
      res.set_header("Vary", "Origin");
      res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type, X-API-Key");
      res.set_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
    }
    if (req.method == "OPTIONS") {
      res.status = allowed ? 204 : 403;
      return httplib::Server::HandlerResponse::Handled;
    }
    if (!ctx.opts.api_keys.empty() && !public_path(req.path) && !key_matches(presented_key(req), ctx.opts.api_keys)) {
      if (req.path.rfind("/sdapi/", 0) == 0) res.set_header("WWW-Authenticate", "Basic");
      send_error(res, {ErrorCode::kUnauthorized, "a valid API key is required (Authorization: Bearer KEY)"});
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const VgException& e) {
      send_error(res, {e.code(), e.what()});
    } catch (const std::exception& e) {
      send_error(res, {ErrorCode::kInternal, e.what()});
    }
  });
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) send_error(res, {ErrorCode::kFileNotFound, "no endpoint " + req.method + " " + req.path});
    else if (res.status == 413) send_json(res, error_body({ErrorCode::kInvalidArgument, "the request body is too large"}), 413);
  });
  Router routes(s, guard);
  add_native_routes(routes, ctx);
  add_openai_routes(routes, ctx);
  add_openai_video_routes(routes, ctx);
  add_a1111_routes(routes, ctx);
  add_ui_routes(routes, ctx);
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Result<int> Server::start() {
  signal(SIGPIPE, SIG_IGN);
  const int port = impl_->ctx->opts.port == 0 ? impl_->http->bind_to_any_port(impl_->ctx->opts.host)
                                               : (impl_->http->bind_to_port(impl_->ctx->opts.host, impl_->ctx->opts.port)
                                                      ? impl_->ctx->opts.port
                                                      : -1);
  if (port <= 0)
    return Error{ErrorCode::kIoError, "cannot listen on " + impl_->ctx->opts.host + ":" +
                                          std::to_string(impl_->ctx->opts.port) + " (in use or not permitted)"};
  impl_->guard->start(port);
  impl_->thread = std::thread([this] { impl_->http->listen_after_bind(); });
  return port;
}

void Server::wait() {
  if (impl_->thread.joinable()) impl_->thread.join();
}

void Server::stop(bool cancel_running) {
  if (!impl_) return;
  impl_->ctx->jobs->shutdown(cancel_running);
  if (impl_->guard) impl_->guard->stop();
  if (impl_->http) impl_->http->stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace vg::server
