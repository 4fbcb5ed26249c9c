// The bundled export-downloader, loaded through the real loader and handed
// table.export.completed events, against a real HTTPS server
// (tests/fakes/FakeFileServer) with a throwaway CA.
#include "config/Config.h"
#include "fakes/FakeFileServer.h"
#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "plugins/PluginInstance.h"
#include "plugins/PluginLibrary.h"
#include "support/TempDir.h"
#include "support/TestPaths.h"
#include "support/TestPki.h"
#include "support/Wait.h"

#include <clayhook/json.hpp>

#include <Poco/DeflatingStream.h>
#include <Poco/DigestEngine.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/SHA2Engine.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

using namespace clayhook;
using namespace std::chrono_literals;
using clayhook::test::FakeFileServer;
using clayhook::test::TempDir;
namespace fs = std::filesystem;

namespace {

// The test PKI (tests/support/TestPki), made once for every test here.
const test::TestPki& pki() {
    return test::TestPki::shared();
}

// The HTTPS fake with the localhost certificate.
std::unique_ptr<FakeFileServer> https_server() {
    return std::make_unique<FakeFileServer>(FakeFileServer::Tls{pki().good_cert, pki().good_key});
}

std::string sha256_hex(const std::string& data) {
    Poco::SHA2Engine sha(Poco::SHA2Engine::SHA_256);
    sha.update(data);
    return Poco::DigestEngine::digestToHex(sha.digest());
}

std::string gzip(const std::string& data) {
    std::ostringstream out;
    Poco::DeflatingOutputStream z(out, Poco::DeflatingStreamBuf::STREAM_GZIP);
    z.write(data.data(), static_cast<std::streamsize>(data.size()));
    z.close();
    return out.str();
}

// A CSV export: a header and `rows` data rows.
std::string csv(int rows) {
    std::string s = "row_id,email,company\n";
    for (int i = 0; i < rows; ++i)
        s += "row_" + std::to_string(i) + ",person" + std::to_string(i) + "@example.com,Acme " +
             std::to_string(i) + "\n";
    return s;
}

std::string export_event(const std::string& url, int64_t rows,
                         const std::string& table_id = "t_abc123",
                         const std::string& export_id = "exp_9",
                         const std::string& format = "csv") {
    json::Value v = json::Value::object();
    v.set("event", "table.export.completed");
    v.set("table_id", table_id);
    v.set("export_id", export_id);
    v.set("timestamp", "2026-11-26T12:01:00.000Z");
    v.set("export_url", url);
    v.set("row_count", rows);
    v.set("format", format);
    return json::dump(v);
}

// Every file under `dir`, relative, sorted.
std::vector<std::string> files_in(const fs::path& dir) {
    std::vector<std::string> out;
    if (!fs::exists(dir)) return out;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (!e.is_directory()) out.push_back(fs::relative(e.path(), dir).string());
    std::sort(out.begin(), out.end());
    return out;
}

// One loaded plugin instance with its own log, metrics and download folder.
struct Downloader {
    TempDir stage, root;
    fs::path dir;
    std::ostringstream log_out;
    Logger log{log_out, Level::debug};
    Metrics metrics;
    std::unique_ptr<PluginInstance> inst;

    // `tweak` edits the default config: the fake's CA, localhost allowed,
    // loopback allowed through allowed_cidrs, short timeouts. Without
    // `test_ca` there is no ca_file (and no need for the openssl command).
    explicit Downloader(const std::function<void(json::Value&)>& tweak = {}, bool test_ca = true) {
        dir = root.path() / "exports";
        json::Value cfg = json::Value::object();
        cfg.set("directory", dir.string());
        cfg.set("allowed_hosts",
                json::Value::array().push_back("localhost").push_back("127.0.0.1"));
        cfg.set("allowed_cidrs", json::Value::array().push_back("127.0.0.0/8"));
        if (test_ca) cfg.set("ca_file", pki().ca);
        cfg.set("timeout_ms", 5000);
        cfg.set("max_duration_ms", 20000);
        if (tweak) tweak(cfg);
        inst = create(json::dump(cfg));
    }

    std::unique_ptr<PluginInstance> create(const std::string& config_json) {
        auto lib = PluginLibrary::load(
            "exports", std::string(test::kBundledPluginDir) + "/export-downloader.so",
            stage.path().string());
        PluginConfig pc;
        pc.name = "exports";
        pc.config_json = config_json;
        return PluginInstance::create(lib, pc, log, metrics);
    }

    HandleOutcome deliver(const std::string& body, const std::string& id = "evt_1") {
        EventView e;
        e.id = id;
        e.source = "clay";
        e.type = "table.export.completed";
        e.idempotency_key = id;
        e.body = body;
        e.attempt = 1;
        return inst->handle(e);
    }

    double counter(const std::string& name, const std::string& labels = "") const {
        std::string l = R"(plugin="exports")";
        if (!labels.empty()) l += "," + labels;
        return metrics.value("clayhook_plugin_" + name, l);
    }
    std::vector<std::string> files() const { return files_in(dir); }
    std::string read(const std::string& name) const {
        return test::read_file((dir / name).string());
    }
};

}  // namespace

TEST_CASE("export-downloader fetches an export once: file, checksum, rows", "[export-downloader]") {
    auto server = https_server();
    const std::string body = csv(1200);
    server->route("/t_abc123/exp_9.csv", {.body = body});
    Downloader d;
    CHECK(d.inst->max_concurrency() == 4);
    const std::string url =
        server->url("/t_abc123/exp_9.csv") + "?X-Amz-Signature=secret-token-123&expires=9";

    auto r = d.deliver(export_event(url, 1200));
    INFO(r.reason << "\n" << d.log_out.str());
    REQUIRE(r.status == CLAYHOOK_DONE);
    CHECK(d.files() == std::vector<std::string>{"t_abc123_exp_9.csv", "t_abc123_exp_9.csv.sha256"});
    CHECK(d.read("t_abc123_exp_9.csv") == body);
    CHECK(d.read("t_abc123_exp_9.csv.sha256") == sha256_hex(body) + "  t_abc123_exp_9.csv\n");
    CHECK(d.counter("downloads_total", R"(result="ok")") == 1);
    CHECK(d.counter("bytes_total") == static_cast<double>(body.size()));

    auto reqs = server->requests();
    REQUIRE(reqs.size() == 1);
    CHECK(reqs[0].method == "GET");
    CHECK(reqs[0].target == "/t_abc123/exp_9.csv?X-Amz-Signature=secret-token-123&expires=9");
    CHECK(reqs[0].host == "localhost:" + std::to_string(server->port()));
    CHECK(reqs[0].accept_encoding == "gzip");
    // The query may carry a signed token: logs show scheme://host/path only.
    CHECK_THAT(d.log_out.str(),
               Catch::Contains("https://localhost:" + std::to_string(server->port()) +
                               "/t_abc123/exp_9.csv"));
    CHECK_THAT(d.log_out.str(), !Catch::Contains("secret-token-123"));

    SECTION("a second delivery of the same export is not fetched again") {
        auto again = d.deliver(export_event(url, 1200), "evt_2");
        CHECK(again.status == CLAYHOOK_DONE);
        CHECK(server->requests().size() == 1);
        CHECK(d.counter("downloads_total", R"(result="skipped")") == 1);
        CHECK(d.read("t_abc123_exp_9.csv") == body);
    }
}

TEST_CASE("export-downloader counts CSV records the RFC 4180 way", "[export-downloader]") {
    auto server = https_server();
    Downloader d;
    // Quoted fields with newlines and "" escapes, CRLF, a blank line, and a
    // last record without a newline: three data rows.
    const std::string body =
        "id,note\r\n1,\"line one\r\nline two\"\r\n\r\n2,\"say \"\"hi\"\",\nbye\"\r\n3,last";
    server->route("/x.csv", {.body = body});
    auto r = d.deliver(export_event(server->url("/x.csv"), 3));
    INFO(r.reason);
    CHECK(r.status == CLAYHOOK_DONE);
    CHECK(d.read("t_abc123_exp_9.csv") == body);

    server->route("/header-only.csv", {.body = "a,b\n"});
    r = d.deliver(export_event(server->url("/header-only.csv"), 0, "t_1", "exp_0"));
    INFO(r.reason);
    CHECK(r.status == CLAYHOOK_DONE);

    server->route("/open-quote.csv", {.body = "a,b\n1,\"never closed\n2,x\n"});
    r = d.deliver(export_event(server->url("/open-quote.csv"), 1, "t_1", "exp_q"));
    CHECK(r.status == CLAYHOOK_FAIL);
    CHECK_THAT(r.reason, Catch::Contains("ends inside a quoted field"));
}

TEST_CASE("export-downloader keeps a file with the wrong row count aside", "[export-downloader]") {
    auto server = https_server();
    const std::string body = csv(1199);
    server->route("/t_abc123/exp_9.csv", {.body = body});
    Downloader d;
    auto r = d.deliver(export_event(server->url("/t_abc123/exp_9.csv"), 1200));
    CHECK(r.status == CLAYHOOK_FAIL);
    CHECK_THAT(r.reason, Catch::Contains("the event says 1200 data rows, the file has 1199"));
    CHECK_THAT(r.reason, Catch::Contains("t_abc123_exp_9.csv.rejected"));
    CHECK(d.files() == std::vector<std::string>{"t_abc123_exp_9.csv.rejected"});
    CHECK(d.read("t_abc123_exp_9.csv.rejected") == body);
    CHECK(d.counter("downloads_total", R"(result="failed")") == 1);
}

TEST_CASE("export-downloader retries a slow server and leaves nothing behind",
          "[export-downloader]") {
    auto server = https_server();
    SECTION("no data for longer than timeout_ms") {
        server->route("/slow.csv", {.body = csv(3), .delay_before_body = 3000ms});
        Downloader d([](json::Value& c) { c.set("timeout_ms", 300); });
        auto started = std::chrono::steady_clock::now();
        auto r = d.deliver(export_event(server->url("/slow.csv"), 3));
        CHECK(r.status == CLAYHOOK_RETRY);
        CHECK_THAT(r.reason, Catch::Contains("timed out"));
        CHECK(std::chrono::steady_clock::now() - started < 2500ms);
        CHECK(d.files().empty());
    }
    SECTION("no answer for longer than timeout_ms") {
        server->route("/slow.csv", {.body = csv(3), .delay_before_headers = 3000ms});
        Downloader d([](json::Value& c) { c.set("timeout_ms", 300); });
        auto r = d.deliver(export_event(server->url("/slow.csv"), 3));
        CHECK(r.status == CLAYHOOK_RETRY);
        CHECK_THAT(r.reason, Catch::Contains("timed out"));
        CHECK(d.files().empty());
    }
    SECTION("a server that takes the connection but never speaks TLS") {
        Poco::Net::ServerSocket silent(Poco::Net::SocketAddress("127.0.0.1", 0));  // no accept()
        Downloader d([](json::Value& c) { c.set("timeout_ms", 300); });
        auto started = std::chrono::steady_clock::now();
        auto r = d.deliver(export_event(
            "https://localhost:" + std::to_string(silent.address().port()) + "/x.csv", 3));
        CHECK(r.status == CLAYHOOK_RETRY);
        CHECK_THAT(r.reason, Catch::Contains("timed out"));
        CHECK(std::chrono::steady_clock::now() - started < 2500ms);
        CHECK(d.files().empty());
    }
    SECTION("a trickle that outlasts max_duration_ms") {
        server->route("/trickle.csv",
                      {.body = csv(50), .trickle_every = 20ms, .trickle_bytes = 10});
        Downloader d([](json::Value& c) {
            c.set("timeout_ms", 1000);
            c.set("max_duration_ms", 400);
        });
        auto started = std::chrono::steady_clock::now();
        auto r = d.deliver(export_event(server->url("/trickle.csv"), 50));
        CHECK(r.status == CLAYHOOK_RETRY);
        CHECK_THAT(r.reason, Catch::Contains("max_duration_ms"));
        CHECK(std::chrono::steady_clock::now() - started < 1500ms);
        CHECK(d.files().empty());
    }
}

TEST_CASE("export-downloader retries a truncated body and leaves nothing behind",
          "[export-downloader]") {
    auto server = https_server();
    const std::string body = csv(100);
    server->route("/cut.csv", {.body = body, .truncate_after = 1000});
    Downloader d;
    auto r = d.deliver(export_event(server->url("/cut.csv"), 100));
    CHECK(r.status == CLAYHOOK_RETRY);
    CHECK_THAT(r.reason, Catch::Contains("cut off") || Catch::Contains("connection failed"));
    CHECK_THAT(r.reason, Catch::Contains("1000"));
    CHECK(d.files().empty());
    CHECK(d.counter("downloads_total", R"(result="failed")") == 1);

    SECTION("gzip cut short") {
        server->route("/cut.csv.gz", {.body = body, .gzip = true, .truncate_after = 200});
        r = d.deliver(export_event(server->url("/cut.csv.gz"), 100), "evt_2");
        CHECK(r.status == CLAYHOOK_RETRY);
        CHECK(d.files().empty());
    }
    SECTION("and a whole body afterwards is taken") {
        server->route("/cut.csv", {.body = body});
        r = d.deliver(export_event(server->url("/cut.csv"), 100), "evt_2");
        CHECK(r.status == CLAYHOOK_DONE);
        CHECK(d.read("t_abc123_exp_9.csv") == body);
    }
}

TEST_CASE("export-downloader refuses an export past max_bytes", "[export-downloader]") {
    auto server = https_server();
    Downloader d([](json::Value& c) { c.set("max_bytes", 1000); });
    SECTION("announced by Content-Length") {
        server->route("/big.csv", {.body = csv(10), .content_length = 10'000'000});
        auto r = d.deliver(export_event(server->url("/big.csv"), 10));
        CHECK(r.status == CLAYHOOK_FAIL);
        CHECK_THAT(r.reason, Catch::Contains("Content-Length 10000000 exceeds max_bytes (1000)"));
    }
    SECTION("found while streaming a chunked body") {
        server->route("/big.csv", {.body = csv(200), .chunked = true});
        auto r = d.deliver(export_event(server->url("/big.csv"), 200));
        CHECK(r.status == CLAYHOOK_FAIL);
        CHECK_THAT(r.reason, Catch::Contains("max_bytes (1000)"));
    }
    SECTION("found while decompressing") {
        server->route("/bomb.csv", {.body = std::string(200'000, '\n'), .gzip = true});
        auto r = d.deliver(export_event(server->url("/bomb.csv"), 0));
        CHECK(r.status == CLAYHOOK_FAIL);
        CHECK_THAT(r.reason, Catch::Contains("after decompression"));
    }
    CHECK(d.files().empty());
}

TEST_CASE("export-downloader follows redirects only to allowed hosts", "[export-downloader]") {
    auto server = https_server();
    const std::string body = csv(5);
    server->route("/real.csv", {.body = body});
    SECTION("to an allowed host: followed, and the Host header follows") {
        server->route("/r",
                      {.status = 302, .location = server->url("/real.csv?sig=abc", "127.0.0.1")});
        Downloader d;
        auto r = d.deliver(export_event(server->url("/r"), 5));
        INFO(r.reason);
        CHECK(r.status == CLAYHOOK_DONE);
        CHECK(d.read("t_abc123_exp_9.csv") == body);
        auto reqs = server->requests();
        REQUIRE(reqs.size() == 2);
        CHECK(reqs[1].target == "/real.csv?sig=abc");
        CHECK(reqs[1].host == "127.0.0.1:" + std::to_string(server->port()));
    }
    SECTION("a relative Location") {
        server->route("/dir/r", {.status = 301, .location = "../real.csv"});
        Downloader d;
        auto r = d.deliver(export_event(server->url("/dir/r"), 5));
        INFO(r.reason);
        CHECK(r.status == CLAYHOOK_DONE);
    }
    SECTION("to a host not in allowed_hosts: refused") {
        server->route("/r", {.status = 302, .location = "https://evil.example.net/steal.csv"});
        Downloader d;
        auto r = d.deliver(export_event(server->url("/r"), 5));
        CHECK(r.status == CLAYHOOK_FAIL);
        CHECK_THAT(r.reason, Catch::Contains("'evil.example.net' is not in allowed_hosts"));
        CHECK(d.files().empty());
    }
    SECTION("down to http://: refused") {
        server->route("/r", {.status = 307, .location = "http://localhost:1/real.csv"});
        Downloader d;
        auto r = d.deliver(export_event(server->url("/r"), 5));
        CHECK(r.status == CLAYHOOK_FAIL);
        CHECK_THAT(r.reason, Catch::Contains("http://"));
    }
    SECTION("more than max_redirects: refused") {
        server->route("/a", {.status = 302, .location = "/b"});
        server->route("/b", {.status = 302, .location = "/c"});
        server->route("/c", {.status = 302, .location = "/d"});
        server->route("/d", {.status = 302, .location = "/real.csv"});
        Downloader d;
        auto r = d.deliver(export_event(server->url("/a"), 5));
        CHECK(r.status == CLAYHOOK_FAIL);
        CHECK_THAT(r.reason, Catch::Contains("more than max_redirects (3)"));
        CHECK(server->count("/real.csv") == 0);
        Downloader more([](json::Value& c) { c.set("max_redirects", 4); });
        r = more.deliver(export_event(server->url("/a"), 5));
        CHECK(r.status == CLAYHOOK_DONE);
    }
}

TEST_CASE("export-downloader refuses private addresses unless allowed", "[export-downloader]") {
    auto server = https_server();
    server->route("/x.csv", {.body = csv(1)});
    SECTION("localhost resolves to loopback: refused, nothing sent") {
        Downloader d([](json::Value& c) { c.set("allowed_cidrs", json::Value::array()); });
        auto r = d.deliver(export_event(server->url("/x.csv"), 1));
        CHECK(r.status == CLAYHOOK_FAIL);
        CHECK_THAT(r.reason, Catch::Contains("127.0.0.1 (loopback 127.0.0.0/8)"));
        CHECK(server->requests().empty());
    }
    SECTION("an IP literal is checked too") {
        Downloader d([](json::Value& c) { c.set("allowed_cidrs", json::Value::array()); });
        auto r = d.deliver(export_event(server->url("/x.csv", "127.0.0.1"), 1));
        CHECK(r.status == CLAYHOOK_FAIL);
        CHECK_THAT(r.reason, Catch::Contains("127.0.0.1 (loopback"));
        CHECK(server->requests().empty());
    }
    SECTION("allowed_cidrs that does not cover it: still refused") {
        Downloader d([](json::Value& c) {
            c.set("allowed_cidrs", json::Value::array().push_back("10.0.0.0/8"));
        });
        auto r = d.deliver(export_event(server->url("/x.csv"), 1));
        CHECK(r.status == CLAYHOOK_FAIL);
        CHECK(server->requests().empty());
    }
    SECTION("allow_private_addresses: true lets it through") {
        Downloader d([](json::Value& c) {
            c.set("allowed_cidrs", json::Value::array());
            c.set("allow_private_addresses", true);
        });
        auto r = d.deliver(export_event(server->url("/x.csv"), 1));
        INFO(r.reason);
        CHECK(r.status == CLAYHOOK_DONE);
    }
}

// Addresses in ranges that are not public unicast, given as IP literals (no
// DNS, and nothing is sent: the refusal comes before any connection).
TEST_CASE("export-downloader refuses special-purpose IPv4 and transition IPv6 addresses",
          "[export-downloader]") {
    struct Case {
        const char* address;  // as written in the URL, canonical form
        const char* why;      // the range named in the reason
    };
    const Case cases[] = {
        {"198.18.0.1", "benchmarking 198.18.0.0/15"},
        {"198.19.255.254", "benchmarking 198.18.0.0/15"},
        {"192.0.0.8", "IETF protocol assignments 192.0.0.0/24"},
        // These ranges are refused whole, whatever IPv4 address they embed:
        // 203.0.113.7 would pass the IPv4 rules, and is refused here.
        {"64:ff9b:1::c000:201", "local-use NAT64 64:ff9b:1::/48"},
        {"64:ff9b:1:ffff::cb00:7107", "local-use NAT64 64:ff9b:1::/48"},
        {"2002:c000:204::1", "6to4 2002::/16"},
        {"2002:cb00:7107::1", "6to4 2002::/16"},
        {"2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo 2001::/32"},
        {"::ffff:0:cb00:7107", "IPv4-translated ::ffff:0:0:0/96"},
        {"::ffff:0:c612:1", "IPv4-translated ::ffff:0:0:0/96"},
    };
    json::Value hosts = json::Value::array();
    for (const auto& c : cases)
        hosts.push_back(c.address);
    Downloader d(
        [&](json::Value& c) {
            c.set("allowed_hosts", hosts);
            c.set("allowed_cidrs", json::Value::array());
            c.set("timeout_ms", 300);
        },
        false);
    for (const auto& c : cases) {
        std::string a = c.address;
        std::string url =
            "https://" + (a.find(':') != std::string::npos ? "[" + a + "]" : a) + "/x.csv";
        auto r = d.deliver(export_event(url, 1));
        INFO(url << ": " << r.reason);
        CHECK(r.status == CLAYHOOK_FAIL);
        CHECK_THAT(r.reason,
                   Catch::Contains("resolves to refused address(es): " + a + " (" + c.why + ")"));
    }
    CHECK(d.counter("bytes_total") == 0);
    CHECK(d.files().empty());
}

// The IPv6 forms that carry a whole IPv4 address, which the kernel (mapped)
// or a NAT64 gateway turns into a connection to that IPv4 address: the
// embedded address goes through the IPv4 rules.
TEST_CASE("export-downloader checks the IPv4 address inside mapped and NAT64 addresses",
          "[export-downloader]") {
    FakeFileServer plain;  // http://127.0.0.1:port
    plain.route("/x.csv", {.body = csv(1)});
    const std::string port = std::to_string(plain.port());
    struct Case {
        const char* address;
        const char* why;
    };
    const Case cases[] = {
        {"::ffff:127.0.0.1", "IPv4-mapped loopback 127.0.0.0/8"},
        {"64:ff9b::7f00:1", "NAT64 loopback 127.0.0.0/8"},
        {"::ffff:10.1.2.3", "IPv4-mapped private 10.0.0.0/8"},
        {"::ffff:198.18.0.1", "IPv4-mapped benchmarking 198.18.0.0/15"},
        {"64:ff9b::c612:1", "NAT64 benchmarking 198.18.0.0/15"},
        {"::ffff:192.0.0.170", "IPv4-mapped IETF protocol assignments 192.0.0.0/24"},
        {"64:ff9b::c000:aa", "NAT64 IETF protocol assignments 192.0.0.0/24"},
    };
    json::Value hosts = json::Value::array();
    for (const auto& c : cases)
        hosts.push_back(c.address);
    Downloader d(
        [&](json::Value& c) {
            c.set("allowed_hosts", hosts);
            c.set("allowed_cidrs", json::Value::array());
            c.set("allow_http", true);
            c.set("timeout_ms", 300);
        },
        false);
    for (const auto& c : cases) {
        std::string url = "http://[" + std::string(c.address) + "]:" + port + "/x.csv";
        auto r = d.deliver(export_event(url, 1));
        INFO(url << ": " << r.reason);
        CHECK(r.status == CLAYHOOK_FAIL);
        CHECK_THAT(r.reason, Catch::Contains("resolves to refused address(es): " +
                                             std::string(c.address) + " (" + c.why + ")"));
    }
    CHECK(plain.requests().empty());
    CHECK(d.files().empty());
}

TEST_CASE("export-downloader refuses http:// and hosts not allowed", "[export-downloader]") {
    FakeFileServer plain;  // http://
    plain.route("/x.csv", {.body = csv(2)});
    SECTION("http:// is refused by default") {
        Downloader d;
        auto r = d.deliver(export_event(plain.url("/x.csv"), 2));
        CHECK(r.status == CLAYHOOK_FAIL);
        CHECK_THAT(r.reason, Catch::Contains("uses http://, which is refused"));
        CHECK(plain.requests().empty());
    }
    SECTION("allow_http: true takes it") {
        Downloader d([](json::Value& c) { c.set("allow_http", true); });
        auto r = d.deliver(export_event(plain.url("/x.csv"), 2));
        INFO(r.reason);
        CHECK(r.status == CLAYHOOK_DONE);
    }
    SECTION("a host outside allowed_hosts is refused before any lookup") {
        Downloader d([](json::Value& c) {
            c.set("allowed_hosts", json::Value::array().push_back(".example.com"));
        });
        auto r = d.deliver(export_event("https://exports.example.org/t/e.csv?sig=1", 2));
        CHECK(r.status == CLAYHOOK_FAIL);
        CHECK_THAT(r.reason, Catch::Contains("'exports.example.org' is not in allowed_hosts"));
        CHECK_THAT(r.reason, !Catch::Contains("sig=1"));
        // A suffix matches names under it, not look-alikes.
        r = d.deliver(export_event("https://badexample.com/e.csv", 2));
        CHECK_THAT(r.reason, Catch::Contains("not in allowed_hosts"));
    }
}

TEST_CASE("export-downloader verifies the TLS certificate against the host name",
          "[export-downloader]") {
    SECTION("a certificate for another name") {
        FakeFileServer server(FakeFileServer::Tls{pki().other_cert, pki().other_key});
        server.route("/x.csv", {.body = csv(1)});
        Downloader d;
        auto r = d.deliver(export_event(server.url("/x.csv"), 1));
        CHECK(r.status == CLAYHOOK_FAIL);
        CHECK_THAT(r.reason, Catch::Contains("TLS certificate"));
        CHECK(server.requests().empty());
    }
    SECTION("a certificate from a CA not trusted") {
        auto server = https_server();
        server->route("/x.csv", {.body = csv(1)});
        Downloader d([](json::Value& c) { c.set("ca_file", nullptr); });
        auto r = d.deliver(export_event(server->url("/x.csv"), 1));
        CHECK(r.status == CLAYHOOK_FAIL);
        CHECK_THAT(r.reason, Catch::Contains("TLS certificate"));
        CHECK(server->requests().empty());
    }
}

TEST_CASE("export-downloader decompresses gzip while streaming", "[export-downloader]") {
    auto server = https_server();
    const std::string body = csv(500);
    Downloader d;
    SECTION("Content-Encoding: gzip") {
        server->route("/x.csv", {.body = body, .gzip = true});
        auto r = d.deliver(export_event(server->url("/x.csv"), 500));
        INFO(r.reason);
        CHECK(r.status == CLAYHOOK_DONE);
        CHECK(d.read("t_abc123_exp_9.csv") == body);
        CHECK(d.read("t_abc123_exp_9.csv.sha256") == sha256_hex(body) + "  t_abc123_exp_9.csv\n");
        CHECK(d.counter("bytes_total") == static_cast<double>(gzip(body).size()));
    }
    SECTION("a .gz file served as is (recognised by its magic bytes), chunked") {
        server->route("/x.csv.gz", {.body = body, .gzip_silently = true, .chunked = true});
        auto r = d.deliver(export_event(server->url("/x.csv.gz"), 500));
        INFO(r.reason);
        CHECK(r.status == CLAYHOOK_DONE);
        CHECK(d.read("t_abc123_exp_9.csv") == body);
    }
    SECTION("a body that ends with the connection") {
        server->route("/x.csv", {.body = body, .no_length = true});
        auto r = d.deliver(export_event(server->url("/x.csv"), 500));
        INFO(r.reason);
        CHECK(r.status == CLAYHOOK_DONE);
        CHECK(d.read("t_abc123_exp_9.csv") == body);
    }
}

TEST_CASE("export-downloader retries 5xx and 429, fails other 4xx", "[export-downloader]") {
    auto server = https_server();
    Downloader d;
    server->route("/500", {.status = 500, .body = "oops"});
    server->route("/503", {.status = 503, .headers = {{"Retry-After", "7"}}});
    server->route("/429", {.status = 429, .headers = {{"Retry-After", "2"}}});
    server->route("/403", {.status = 403, .body = "expired"});
    server->route("/503-date",
                  {.status = 503, .headers = {{"Retry-After", "Fri, 01 Jan 2100 00:00:00 GMT"}}});

    auto r = d.deliver(export_event(server->url("/500"), 1));
    CHECK(r.status == CLAYHOOK_RETRY);
    CHECK_THAT(r.reason, Catch::Contains("HTTP 500 Internal Server Error from https://localhost:"));
    CHECK(r.retry_after == 0ms);

    r = d.deliver(export_event(server->url("/503"), 1));
    CHECK(r.status == CLAYHOOK_RETRY);
    CHECK(r.retry_after == 7000ms);

    r = d.deliver(export_event(server->url("/429"), 1));
    CHECK(r.status == CLAYHOOK_RETRY);
    CHECK(r.retry_after == 2000ms);

    // An HTTP date works too; waits are capped at a day.
    r = d.deliver(export_event(server->url("/503-date"), 1));
    CHECK(r.status == CLAYHOOK_RETRY);
    CHECK(r.retry_after == 24h);

    r = d.deliver(export_event(server->url("/missing.csv"), 1));
    CHECK(r.status == CLAYHOOK_FAIL);
    CHECK_THAT(r.reason, Catch::Contains("HTTP 404"));

    r = d.deliver(export_event(server->url("/403"), 1));
    CHECK(r.status == CLAYHOOK_FAIL);
    CHECK_THAT(r.reason, Catch::Contains("HTTP 403"));
    CHECK(d.files().empty());
    CHECK(d.counter("downloads_total", R"(result="failed")") == 6);
}

TEST_CASE("export-downloader names files from sanitised ids inside its directory",
          "[export-downloader]") {
    auto server = https_server();
    server->route("/x.csv", {.body = csv(2)});
    Downloader d;
    auto r = d.deliver(export_event(server->url("/x.csv"), 2, "../../etc", "pass/wd"));
    INFO(r.reason);
    REQUIRE(r.status == CLAYHOOK_DONE);
    // Everything landed in the download folder, nowhere else under the root.
    auto all = files_in(d.root.path());
    REQUIRE(all.size() == 2);
    for (const auto& f : all)
        CHECK(f.rfind("exports/", 0) == 0);
    auto files = d.files();
    // "../../etc" + "_" + "pass/wd", cleaned, the leading '.' made '_', and a
    // hash of the original ids, since cleaning changed them.
    CHECK(files[0].rfind("_._.._etc_pass_wd-", 0) == 0);
    CHECK(files[0].size() == std::string("_._.._etc_pass_wd-").size() + 12 + 4);
    CHECK(files[0].substr(files[0].size() - 4) == ".csv");
    CHECK(files[1] == files[0] + ".sha256");

    // A format that is not a plain extension is refused, and so are the
    // events that lack what the plugin needs.
    r = d.deliver(export_event(server->url("/x.csv"), 2, "t_1", "e_1", "../csv"));
    CHECK(r.status == CLAYHOOK_FAIL);
    CHECK_THAT(r.reason, Catch::Contains("'format'"));
    r = d.deliver(R"({"event":"table.export.completed","table_id":"t_1","row_count":1})");
    CHECK(r.status == CLAYHOOK_FAIL);
    CHECK_THAT(r.reason, Catch::Contains("'export_id' is missing"));
    r = d.deliver(
        R"({"event":"table.export.completed","table_id":"t_1","export_id":"e","row_count":1})");
    CHECK_THAT(r.reason, Catch::Contains("'export_url' is missing"));
    r = d.deliver(
        R"({"table_id":"t_1","export_id":"e","export_url":"https://localhost/x","row_count":"12"})");
    CHECK(r.status == CLAYHOOK_FAIL);
    CHECK_THAT(r.reason, Catch::Contains("'row_count'"));
    r = d.deliver(R"({"table_id":"t_1","export_id":"e","export_url":"https://localhost/x"})");
    CHECK_THAT(r.reason, Catch::Contains("'row_count' is missing"));
    r = d.deliver(R"({"table_id":"t_1","export_id":"e","export_url":"not a url","row_count":1})");
    CHECK(r.status == CLAYHOOK_FAIL);
    CHECK_THAT(r.reason, Catch::Contains("export_url"));
    r = d.deliver("not json");
    CHECK(r.status == CLAYHOOK_FAIL);
    CHECK_THAT(r.reason, Catch::Contains("not JSON"));
}

// The plugin writes NAME.sha256 beside a download and sets a rejected one
// aside as NAME.rejected. A download must never get one of those names:
// it would pass for another export's side file, or be overwritten by one.
TEST_CASE("export-downloader keeps downloads and its side files apart", "[export-downloader]") {
    FakeFileServer plain;  // http://
    const std::string a_body = csv(2);
    const std::string b_body = "a file named like a side file\n";
    plain.route("/a.csv", {.body = a_body});
    plain.route("/b", {.body = b_body});
    Downloader d([](json::Value& c) { c.set("allow_http", true); }, false);
    const std::string a_sum = sha256_hex(a_body) + "  t_1_e_1.csv\n";
    // t_1_e_1.csv, and with a row count that does not match, rejected.
    const std::string a = export_event(plain.url("/a.csv"), 2, "t_1", "e_1", "csv");
    const std::string a_bad = export_event(plain.url("/a.csv"), 3, "t_1", "e_1", "csv");
    // Ids and format that would name the file t_1_e_1.csv.sha256 and
    // t_1_e_1.csv.rejected: a's side files.
    const std::string b_sum = export_event(plain.url("/b"), 1, "t_1", "e_1.csv", "sha256");
    const std::string b_rej = export_event(plain.url("/b"), 1, "t_1", "e_1.csv", "rejected");
    auto refused = [&](const HandleOutcome& r) {
        INFO(r.reason);
        CHECK(r.status == CLAYHOOK_FAIL);
        CHECK_THAT(r.reason, Catch::Contains("event field 'format'"));
        CHECK_THAT(r.reason, Catch::Contains("side files"));
    };

    SECTION("named like a checksum already there: refused, not skipped") {
        REQUIRE(d.deliver(a).status == CLAYHOOK_DONE);
        refused(d.deliver(b_sum, "evt_2"));
        CHECK(d.counter("downloads_total", R"(result="skipped")") == 0);
        CHECK(plain.count("/b") == 0);
        CHECK(d.files() == std::vector<std::string>{"t_1_e_1.csv", "t_1_e_1.csv.sha256"});
        CHECK(d.read("t_1_e_1.csv.sha256") == a_sum);
    }
    SECTION("named like a checksum not yet written: refused, so nothing to overwrite") {
        refused(d.deliver(b_sum));
        CHECK(plain.count("/b") == 0);
        CHECK(d.files().empty());
        REQUIRE(d.deliver(a, "evt_2").status == CLAYHOOK_DONE);
        CHECK(d.files() == std::vector<std::string>{"t_1_e_1.csv", "t_1_e_1.csv.sha256"});
        CHECK(d.read("t_1_e_1.csv.sha256") == a_sum);
    }
    SECTION("named like a rejected file already there: refused, not skipped") {
        REQUIRE(d.deliver(a_bad).status == CLAYHOOK_FAIL);
        REQUIRE(d.files() == std::vector<std::string>{"t_1_e_1.csv.rejected"});
        refused(d.deliver(b_rej, "evt_2"));
        CHECK(d.counter("downloads_total", R"(result="skipped")") == 0);
        CHECK(plain.count("/b") == 0);
        CHECK(d.read("t_1_e_1.csv.rejected") == a_body);
    }
    SECTION("named like a rejected file not yet set aside: refused, so nothing to overwrite") {
        refused(d.deliver(b_rej));
        CHECK(plain.count("/b") == 0);
        CHECK(d.files().empty());
        REQUIRE(d.deliver(a_bad, "evt_2").status == CLAYHOOK_FAIL);
        CHECK(d.files() == std::vector<std::string>{"t_1_e_1.csv.rejected"});
        CHECK(d.read("t_1_e_1.csv.rejected") == a_body);
    }
    SECTION("in any case, and whatever the ids") {
        refused(d.deliver(export_event(plain.url("/b"), 1, "t_2", "e_2", "SHA256")));
        refused(d.deliver(export_event(plain.url("/b"), 1, "t_2", "e_2", "Rejected")));
        CHECK(plain.count("/b") == 0);
        CHECK(d.files().empty());
        // Formats that merely contain those words are plain extensions.
        auto r = d.deliver(export_event(plain.url("/b"), 1, "t_2", "e_2", "sha256x"));
        INFO(r.reason);
        CHECK(r.status == CLAYHOOK_DONE);
        CHECK(d.files() == std::vector<std::string>{"t_2_e_2.sha256x", "t_2_e_2.sha256x.sha256"});
    }
}

TEST_CASE("export-downloader runs calls concurrently, one download per export",
          "[export-downloader]") {
    auto server = https_server();
    for (int i = 0; i < 4; ++i)
        server->route("/e" + std::to_string(i) + ".csv",
                      {.body = csv(10 + i), .delay_before_body = 200ms});
    Downloader d;
    std::vector<HandleOutcome> results(4);
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
        threads.emplace_back([&, i] {
            results[static_cast<size_t>(i)] =
                d.deliver(export_event(server->url("/e" + std::to_string(i) + ".csv"), 10 + i,
                                       "t_1", "exp_" + std::to_string(i)),
                          "evt_" + std::to_string(i));
        });
    }
    for (auto& t : threads)
        t.join();
    for (const auto& r : results) {
        INFO(r.reason);
        CHECK(r.status == CLAYHOOK_DONE);
    }
    CHECK(d.files().size() == 8);

    // While one call fetches an export, another for the same one waits.
    server->route("/same.csv", {.body = csv(1), .delay_before_body = 1000ms});
    const std::string same = export_event(server->url("/same.csv"), 1, "t_2", "exp_same");
    HandleOutcome first;
    std::thread t([&] { first = d.deliver(same, "evt_a"); });
    test::wait_until([&] { return server->count("/same.csv") != 0; }, 2s);
    auto second = d.deliver(same, "evt_b");
    t.join();
    CHECK(first.status == CLAYHOOK_DONE);
    CHECK(second.status == CLAYHOOK_RETRY);
    CHECK_THAT(second.reason, Catch::Contains("being downloaded by another call"));
    CHECK(server->count("/same.csv") == 1);
}

TEST_CASE("export-downloader refuses a bad config with its reason", "[export-downloader]") {
    auto refused = [](const std::function<void(json::Value&)>& tweak) -> std::string {
        try {
            Downloader d(tweak);
        } catch (const PluginError& e) {
            return e.what();
        }
        return "(accepted)";
    };
    CHECK_THAT(refused([](json::Value& c) { c.set("directory", ""); }),
               Catch::Contains("'directory' is required"));
    CHECK_THAT(refused([](json::Value& c) { c.set("allowed_hosts", json::Value::array()); }),
               Catch::Contains("'allowed_hosts' is required"));
    CHECK_THAT(refused([](json::Value& c) {
                   c.set("allowed_hosts", json::Value::array().push_back("https://x.com/"));
               }),
               Catch::Contains("is not a host name"));
    // Unknown keys and wrong types the host refuses, from the plugin's
    // declared config (ABI 1.1), with the nearest key suggested.
    CHECK_THAT(refused([](json::Value& c) { c.set("allowed_host", "x"); }),
               Catch::Contains("config.allowed_host: unknown key (did you mean 'allowed_hosts'?)"));
    CHECK_THAT(refused([](json::Value& c) {
                   c.set("allowed_cidrs", json::Value::array().push_back("10.0.0.0/33"));
               }),
               Catch::Contains("'allowed_cidrs'"));
    CHECK_THAT(refused([](json::Value& c) { c.set("max_bytes", 0); }),
               Catch::Contains("'max_bytes' must be an integer"));
    CHECK_THAT(refused([](json::Value& c) { c.set("allow_http", "yes"); }),
               Catch::Contains("config.allow_http: expected true or false"));
    CHECK_THAT(refused([](json::Value& c) { c.set("ca_file", "/nonexistent/ca.pem"); }),
               Catch::Contains("'ca_file'"));
    CHECK(refused({}) == "(accepted)");
}

TEST_CASE("export-downloader removes stale temporary files at start, and only those",
          "[export-downloader]") {
    TempDir root;
    const fs::path dir = root.path() / "exports";
    fs::create_directories(dir);
    auto touch = [&](const std::string& name, std::chrono::hours age) {
        std::ofstream(dir / name) << "x";
        fs::last_write_time(dir / name, fs::file_time_type::clock::now() - age);
    };
    touch(".t_1_e_1.csv.part-AbC123", 48h);         // an attempt long dead
    touch(".t_1_e_2.csv.part-XyZ789", 0h);          // may still be running
    touch("t_1_e_3.csv", 48h);                      // a download
    touch(".t_1_e_4.csv.sha256.part-Qq1234", 48h);  // a dead checksum
    Downloader d([&](json::Value& c) {
        c.set("directory", dir.string());
        c.set("max_duration_ms", 3'600'000);
    });
    CHECK(files_in(dir) == std::vector<std::string>{".t_1_e_2.csv.part-XyZ789", "t_1_e_3.csv"});
    CHECK_THAT(d.log_out.str(), Catch::Contains("removed 2 stale temporary file(s)"));
}
