#pragma once

// The admin API: its own listener (loopback by default), every request
// carrying `Authorization: Bearer <admin.token>` or a console session cookie
// (and then, when it changes anything, the session's X-CSRF-Token). JSON in
// and out. The same listener serves the console at /console/ (the sign-in
// page and the assets compiled in from host/console/assets).
//
//   GET  /admin/plugins                      plugin status and counts
//   POST /admin/plugins/{name}/pause         stop handing it deliveries
//   POST /admin/plugins/{name}/resume
//   GET  /admin/events?type=&status=&since=&until=&before=&limit=
//   GET  /admin/events/{id}                  one event, its deliveries and attempts
//   GET  /admin/deliveries?state=&plugin=&before=&limit=
//   POST /admin/deliveries/{id}/replay       one dead delivery
//   POST /admin/replay                       {"ids":[…]} or {"plugin":"p"} or {"all":true}
//   GET  /admin/reload                       generation, reload count, last result
//   POST /admin/reload                       reload now (422 with the reason if refused)
//   GET  /admin/overview                     the console's overview, with the last hour
//   GET  /admin/config                       the config in force, secrets as references
//   GET  /admin/dead-letters                 dead deliveries by plugin and last error
//   POST /admin/discard                      {"ids":[…]}: delete dead deliveries
//   GET  /admin/session                      the console session's CSRF token
//
// See docs/admin-api.md for the shapes.

#include "config/Config.h"

#include <memory>
#include <string>

namespace clayhook {

class AdminService;
class Dispatcher;
class HttpServer;
class Logger;
class Metrics;
class Reloader;
class Store;

class AdminServer {
  public:
    // Throws std::runtime_error when the token is missing or empty.
    // `reloader` may be null (no reload endpoint then: 404).
    AdminServer(const AdminConfig& config, Store& store, Dispatcher& dispatcher, Logger& log,
                Metrics& metrics, Reloader* reloader = nullptr);
    ~AdminServer();
    AdminServer(const AdminServer&) = delete;
    AdminServer& operator=(const AdminServer&) = delete;

    void start();
    void stop();
    uint16_t port() const;

    struct Shared;

  private:
    AdminConfig config_;
    std::shared_ptr<Shared> shared_;
    std::unique_ptr<AdminService> service_;  // outlives http_
    std::unique_ptr<HttpServer> http_;
};

}  // namespace clayhook
