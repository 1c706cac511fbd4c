// The browser UI: one self-contained page, embedded at build time.
#include "server/context.h"
#include "server/ui_html.h"

namespace vg::server {
using vg::kUiHtml;
}

namespace vg::server {

void add_ui_routes(Router& s, Context&) {
  auto page = [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'");
    res.set_content(kUiHtml, "text/html; charset=utf-8");
  };
  s.Get("/", page);
  s.Get("/index.html", page);
}

}  // namespace vg::server
