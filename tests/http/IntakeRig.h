#pragma once

// A real IntakeServer on 127.0.0.1:0 over a real SQLite file in a test
// folder, with Poco's HTTP client for well-formed requests. Tests that need
// bytes no client would send use support/RawHttp.h against its port.
#include "config/ConfigLoader.h"
#include "http/IntakeServer.h"
#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "store/Store.h"
#include "support/TempDir.h"
#include "verify/Verifier.h"

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>

#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace clayhook::test {

namespace net = Poco::Net;

inline const char* kSecret = "intake-test-secret-1";
inline const char* kSecond = "intake-test-secret-2";

struct Reply {
    int status = 0;
    std::string body;
    std::string retry_after;
};

struct IntakeRig {
    TempDir dir;
    std::ostringstream log_out;
    Logger log{log_out, Level::debug};
    Metrics metrics;
    Config config;
    std::unique_ptr<Store> store;
    std::unique_ptr<IntakeServer> server;

    explicit IntakeRig(const std::string& extra_source_yaml = "",
                       const std::string& listener_extra = "") {
        ::setenv("INTAKE_S1", kSecret, 1);
        ::setenv("INTAKE_S2", kSecond, 1);
        ::setenv("INTAKE_SW", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1);
        auto file = dir.write("c.yaml", R"(admin: {enabled: false}
listener: {address: 127.0.0.1, port: 0, threads: 16)" +
                                            listener_extra + R"(}
store: {path: )" + dir.file("db/clayhook.db") +
                                            R"(}
sources:
  - name: clay
    path: /webhooks/clay
    max_body_bytes: 4KiB
    verify:
      scheme: hmac-sha256
      secrets: ["${INTAKE_S1}", "${INTAKE_S2}"]
)" + extra_source_yaml);
        config = load_config(file, LoadOptions{});
        start();
    }
    void start() {
        store = open_store(config.store, 1024);
        server = std::make_unique<IntakeServer>(config.listener,
                                                build_intake_routes(config, nullptr, metrics),
                                                *store, log, metrics, [] { return true; });
        server->start();
    }
    void restart() {
        server.reset();
        store.reset();
        start();
    }

    Reply request(const std::string& method, const std::string& path, const std::string& body,
                  const std::vector<std::pair<std::string, std::string>>& headers = {},
                  bool chunked = false) {
        net::HTTPClientSession s("127.0.0.1", server->port());
        net::HTTPRequest req(method, path, net::HTTPMessage::HTTP_1_1);
        for (const auto& [k, v] : headers)
            req.set(k, v);
        if (chunked)
            req.setChunkedTransferEncoding(true);
        else
            req.setContentLength64(static_cast<Poco::Int64>(body.size()));
        std::ostream& os = s.sendRequest(req);
        os << body;
        net::HTTPResponse resp;
        std::istream& is = s.receiveResponse(resp);
        Reply r;
        r.status = resp.getStatus();
        Poco::StreamCopier::copyToString(is, r.body);
        r.retry_after = resp.get("Retry-After", "");
        return r;
    }
    Reply post_signed(const std::string& body, const std::string& secret = kSecret,
                      const std::string& prefix = "") {
        return request("POST", "/webhooks/clay", body,
                       {{"x-clay-signature", prefix + hmac_sha256_hex(secret, body)}});
    }
};

inline std::string delivery(int row, const std::string& event = "enrichment.completed") {
    return R"({"event":")" + event + R"(","table_id":"t_abc123","row_id":"row_)" +
           std::to_string(row) + R"(","timestamp":"2026-11-26T12:00:42.042Z","data":{"email":"p)" +
           std::to_string(row) + R"(@example.com"}})";
}

}  // namespace clayhook::test
