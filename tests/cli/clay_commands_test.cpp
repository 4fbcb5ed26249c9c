// `clayhook register | webhooks | sign | send` as an operator runs them: the
// real binary, against a fake Clay API (tests/fakes/FakeClayApi) for the API
// commands and against a real `clayhook serve` for send.
#include "fakes/FakeClayApi.h"
#include "support/HostProcess.h"
#include "support/Subprocess.h"
#include "support/TempDir.h"
#include "support/TestPaths.h"
#include "support/TestPki.h"

#include "clay/ClayApi.h"
#include "config/ConfigLoader.h"
#include "routing/EventCatalogue.h"
#include "verify/Verifier.h"

#include <clayhook/json.hpp>

#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <sstream>

using namespace clayhook::test;
using namespace std::chrono_literals;
namespace json = clayhook::json;

namespace {

// The fake's URL and key; nothing else from the developer's environment that
// would change what the commands do.
Subprocess::Options clay_env(const FakeClayApi& api, std::string key = "") {
    Subprocess::Options o;
    o.env["CLAY_API_URL"] = api.base_url();
    o.env["CLAY_API_KEY"] = key.empty() ? api.api_key() : key;
    o.unset_env = {"CLAYHOOK_CONFIG", "SSL_CERT_FILE"};
    return o;
}

RunResult cli(std::vector<std::string> args, const Subprocess::Options& o) {
    args.insert(args.begin(), kClayhookBin);
    return run(args, o, 60s);
}

// A port nobody listens on: bound by the kernel, then released.
uint16_t closed_port() {
    Poco::Net::ServerSocket s(Poco::Net::SocketAddress("127.0.0.1", 0));
    uint16_t port = s.address().port();
    s.close();
    return port;
}

std::map<std::string, std::string> parse_headers(const std::string& out) {
    std::map<std::string, std::string> h;
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
        auto colon = line.find(": ");
        if (colon != std::string::npos) h[line.substr(0, colon)] = line.substr(colon + 2);
    }
    return h;
}

// One source per verification scheme, secrets in 0600 files.
struct SchemeSecrets {
    std::string hmac = "hmac-secret-for-send-tests-0123";
    std::string hmac_ts = "hmac-ts-secret-for-send-tests-4567";
    std::string token = "token-secret-for-send-tests-89ab";
    // whsec_ + base64("standard-webhooks-send-test-key!")
    std::string standard = "whsec_c3RhbmRhcmQtd2ViaG9va3Mtc2VuZC10ZXN0LWtleSE=";
};

std::string schemes_config(const TempDir& dir, const SchemeSecrets& s, int port,
                           const std::string& name = "c.yaml") {
    auto hmac = dir.write("secrets/hmac", s.hmac);
    auto hmac_ts = dir.write("secrets/hmac-ts", s.hmac_ts);
    auto token = dir.write("secrets/token", s.token);
    auto standard = dir.write("secrets/standard", s.standard);
    return dir.write(name,
                     "admin: {enabled: false}\n"
                     "listener: {address: 127.0.0.1, port: " +
                         std::to_string(port) + "}\n" + "store: {path: " + dir.file("db") + "}\n" +
                         R"(sources:
  - name: hmac
    path: /webhooks/hmac
    verify:
      scheme: hmac-sha256
      header: x-clay-signature
      secrets: ["file:)" +
                         hmac + R"("]
  - name: hmac-ts
    path: /webhooks/hmac-ts
    verify:
      scheme: hmac-sha256-timestamp
      secrets: ["file:)" +
                         hmac_ts + R"("]
  - name: token
    path: /webhooks/token
    verify:
      scheme: token
      secrets: ["file:)" +
                         token + R"("]
  - name: standard
    path: /webhooks/standard
    verify:
      scheme: standard-webhooks
      secrets: ["file:)" +
                         standard + R"("]
)");
}

bool has_secret(const RunResult& r, const SchemeSecrets& s) {
    for (const auto* v : {&s.hmac, &s.hmac_ts, &s.token, &s.standard})
        if (r.out.find(*v) != std::string::npos || r.err.find(*v) != std::string::npos) return true;
    return false;
}

}  // namespace

// ---------------------------------------------------------------------------
// register

TEST_CASE("register prints the webhook id, the secret and how to hand it to the host",
          "[clay][cli]") {
    FakeClayApi api;
    auto r = cli({"register", "--url", "https://hooks.example.com/webhooks/clay", "--table",
                  "t_abc123", "--events", "enrichment.completed,enrichment.failed"},
                 clay_env(api));
    INFO(r.out << r.err);
    REQUIRE(r.code == 0);
    auto hooks = api.webhooks();
    REQUIRE(hooks.size() == 1);
    CHECK_THAT(r.out, Catch::Contains("registered webhook " + hooks[0].id));
    CHECK_THAT(r.out, Catch::Contains("shows it only this once"));
    CHECK_THAT(r.out, Catch::Contains("  " + hooks[0].secret + "\n"));
    CHECK_THAT(r.out, Catch::Contains("CLAY_WEBHOOK_SECRET"));
    CHECK_THAT(r.out, Catch::Contains("verify.secrets"));

    auto reqs = api.requests();
    REQUIRE(reqs.size() == 1);
    CHECK(reqs[0].method == "POST");
    CHECK(reqs[0].path == "/v1/webhooks");
    CHECK(reqs[0].authorization == "Bearer " + api.api_key());
    auto body = json::parse(reqs[0].body);
    CHECK(body.get_string("url", "") == "https://hooks.example.com/webhooks/clay");
    CHECK(body.get_string("table_id", "") == "t_abc123");
    CHECK(body.at_path("events.0")->as_string() == "enrichment.completed");
    CHECK(body.at_path("events.1")->as_string() == "enrichment.failed");
    // The API key is sent, never shown.
    CHECK(r.out.find(api.api_key()) == std::string::npos);
    CHECK(r.err.find(api.api_key()) == std::string::npos);
}

TEST_CASE("register --secret-file writes the secret to a 0600 file and does not print it",
          "[clay][cli]") {
    FakeClayApi api;
    TempDir dir;
    // An existing, world-readable file is replaced, not written through.
    auto path = dir.write("var/clay-webhook-secret", "old");
    std::filesystem::permissions(path, std::filesystem::perms(0644));

    auto r = cli(
        {"register", "--url", "https://hooks.example.com/webhooks/clay", "--table=t_abc123",
         "--events", "table.row.created", "--events", "table.row.updated", "--secret-file", path},
        clay_env(api));
    INFO(r.out << r.err);
    REQUIRE(r.code == 0);
    auto hooks = api.webhooks();
    REQUIRE(hooks.size() == 1);
    CHECK(hooks[0].events == std::vector<std::string>{"table.row.created", "table.row.updated"});
    CHECK(read_file(path) == hooks[0].secret + "\n");
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(r.out.find(hooks[0].secret) == std::string::npos);
    CHECK(r.err.find(hooks[0].secret) == std::string::npos);
    CHECK_THAT(r.out, Catch::Contains("registered webhook " + hooks[0].id));
    CHECK_THAT(r.out, Catch::Contains("'file:" + path + "'"));
    // No temporary file left beside it.
    CHECK(std::distance(std::filesystem::directory_iterator(dir.file("var")),
                        std::filesystem::directory_iterator()) == 1);
}

TEST_CASE("register refuses an unwritable --secret-file before registering anything",
          "[clay][cli]") {
    FakeClayApi api;
    TempDir dir;
    auto r = cli({"register", "--url", "https://hooks.example.com/x", "--table", "t_1", "--events",
                  "workflow.completed", "--secret-file", dir.file("no/such/dir/secret")},
                 clay_env(api));
    INFO(r.out << r.err);
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Catch::Contains("nothing was registered"));
    CHECK(api.requests().empty());
}

TEST_CASE("register with a missing option is a usage error", "[clay][cli]") {
    FakeClayApi api;
    auto r = cli({"register", "--table", "t_1", "--events", "workflow.completed"}, clay_env(api));
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains("--url is required"));
    auto r2 = cli({"webhooks", "frobnicate"}, clay_env(api));
    CHECK(r2.code == 2);
    CHECK_THAT(r2.err, Catch::Contains("unknown subcommand 'frobnicate'"));
    CHECK(api.requests().empty());
}

// ---------------------------------------------------------------------------
// webhooks list | delete

TEST_CASE("webhooks list shows every webhook, and --json is machine-readable", "[clay][cli]") {
    FakeClayApi api;
    auto a = api.seed("https://a.example.com/hook", "t_one", {"enrichment.completed"});
    auto b = api.seed("https://b.example.com/hook", "t_two",
                      {"table.row.created", "workflow.completed"});

    auto r = cli({"webhooks", "list"}, clay_env(api));
    INFO(r.out << r.err);
    REQUIRE(r.code == 0);
    CHECK_THAT(r.out, Catch::StartsWith("ID"));
    CHECK_THAT(r.out, Catch::Contains(a.id));
    CHECK_THAT(r.out, Catch::Contains(b.id));
    CHECK_THAT(r.out, Catch::Contains("table.row.created,workflow.completed"));
    CHECK_THAT(r.out, Catch::Contains("https://b.example.com/hook"));
    CHECK(r.out.find(a.secret) == std::string::npos);
    auto reqs = api.requests();
    REQUIRE(reqs.size() == 1);
    CHECK(reqs[0].method == "GET");
    CHECK(reqs[0].path == "/v1/webhooks");
    CHECK(reqs[0].authorization == "Bearer " + api.api_key());

    auto j = cli({"webhooks", "list", "--json"}, clay_env(api));
    INFO(j.out << j.err);
    REQUIRE(j.code == 0);
    auto doc = json::parse(j.out);
    REQUIRE(doc.find("data") != nullptr);
    REQUIRE(doc.find("data")->size() == 2);
    CHECK(doc.at_path("data.0.id")->as_string() == a.id);
    CHECK(doc.at_path("data.1.events.1")->as_string() == "workflow.completed");
    CHECK(doc.at_path("data.0.secret") == nullptr);
}

TEST_CASE("webhooks list on an empty account says so", "[clay][cli]") {
    FakeClayApi api;
    auto r = cli({"webhooks", "list"}, clay_env(api));
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Catch::Contains("no webhooks registered"));
}

TEST_CASE("webhooks delete removes one, an unknown id fails", "[clay][cli]") {
    FakeClayApi api;
    auto a = api.seed("https://a.example.com/hook", "t_one", {"enrichment.completed"});
    auto b = api.seed("https://b.example.com/hook", "t_two", {"workflow.completed"});

    auto r = cli({"webhooks", "delete", a.id}, clay_env(api));
    INFO(r.out << r.err);
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Catch::Contains("deleted webhook " + a.id));
    auto left = api.webhooks();
    REQUIRE(left.size() == 1);
    CHECK(left[0].id == b.id);
    auto reqs = api.requests();
    REQUIRE(reqs.size() == 1);
    CHECK(reqs[0].method == "DELETE");
    CHECK(reqs[0].path == "/v1/webhooks/" + a.id);

    auto again = cli({"webhooks", "delete", a.id}, clay_env(api));
    CHECK(again.code == 1);
    CHECK_THAT(again.err, Catch::Contains("Clay has no webhook " + a.id + " (404)"));

    auto usage = cli({"webhooks", "delete"}, clay_env(api));
    CHECK(usage.code == 2);
}

// ---------------------------------------------------------------------------
// errors

TEST_CASE("a missing CLAY_API_KEY exits 3 before any request", "[clay][cli]") {
    FakeClayApi api;
    auto o = clay_env(api);
    o.env.erase("CLAY_API_KEY");
    o.unset_env.push_back("CLAY_API_KEY");
    auto r = cli({"webhooks", "list"}, o);
    CHECK(r.code == 3);
    CHECK_THAT(r.err, Catch::Contains("CLAY_API_KEY is not set"));

    o.env["CLAY_API_KEY"] = "";
    auto r2 = cli({"register", "--url", "https://x.example.com/h", "--table", "t_1", "--events",
                   "workflow.completed"},
                  o);
    CHECK(r2.code == 3);
    CHECK(api.requests().empty());
}

TEST_CASE("a key Clay refuses (401) exits 4 without showing the key", "[clay][cli]") {
    FakeClayApi api;
    auto r = cli({"webhooks", "list"}, clay_env(api, "wrong-key-0123456789"));
    INFO(r.out << r.err);
    CHECK(r.code == 4);
    CHECK_THAT(r.err, Catch::Contains("Clay refused the API key (401 invalid_api_key): check "
                                      "CLAY_API_KEY"));
    CHECK(r.err.find("wrong-key-0123456789") == std::string::npos);
    REQUIRE(api.requests().size() == 1);
    CHECK(api.requests()[0].authorization == "Bearer wrong-key-0123456789");
}

TEST_CASE("a registration Clay refuses (422) exits 5 with each of Clay's details", "[clay][cli]") {
    FakeClayApi api;
    auto r = cli({"register", "--url", "not-a-url", "--table", "", "--events",
                  "enrichment.completed,row.exploded"},
                 clay_env(api));
    INFO(r.out << r.err);
    CHECK(r.code == 5);
    CHECK_THAT(r.err, Catch::Contains("Clay refused the request (422 validation_error):\n"));
    CHECK_THAT(r.err, Catch::Contains("  - url: must be an absolute https:// URL"));
    CHECK_THAT(r.err, Catch::Contains("  - table_id: is required"));
    CHECK_THAT(r.err, Catch::Contains("  - events: unknown event type 'row.exploded'"));
    CHECK(api.webhooks().empty());
}

TEST_CASE("a 429 is waited out once (Retry-After) and the retry succeeds", "[clay][cli]") {
    FakeClayApi api;
    api.seed("https://a.example.com/hook", "t_one", {"enrichment.completed"});
    api.rate_limit_next(1, "1");
    auto r = cli({"webhooks", "list"}, clay_env(api));
    INFO(r.out << r.err);
    CHECK(r.code == 0);
    CHECK_THAT(r.err, Catch::Contains("rate limiting (429)"));
    CHECK_THAT(r.err, Catch::Contains("waiting 1 s"));
    CHECK_THAT(r.out, Catch::Contains("t_one"));
    auto reqs = api.requests();
    REQUIRE(reqs.size() == 2);
    CHECK(reqs[1].at - reqs[0].at >= 900ms);
}

TEST_CASE("a second 429 exits 6 without a third attempt", "[clay][cli]") {
    FakeClayApi api;
    api.rate_limit_next(2, "1");
    auto r = cli({"register", "--url", "https://x.example.com/h", "--table", "t_1", "--events",
                  "workflow.completed"},
                 clay_env(api));
    INFO(r.out << r.err);
    CHECK(r.code == 6);
    CHECK_THAT(r.err, Catch::Contains("still rate limiting (429)"));
    CHECK(api.requests().size() == 2);
    CHECK(api.webhooks().empty());
}

TEST_CASE("a Retry-After longer than the cap is reported at once (exit 6)", "[clay][cli]") {
    FakeClayApi api;
    api.rate_limit_next(1, "3600");
    auto r = cli({"webhooks", "list"}, clay_env(api));
    INFO(r.out << r.err);
    CHECK(r.code == 6);
    CHECK_THAT(r.err, Catch::Contains("asks to wait 3600 s"));
    CHECK(api.requests().size() == 1);
}

TEST_CASE("network failures exit 7 and name the URL", "[clay][cli]") {
    FakeClayApi api;
    SECTION("connection refused") {
        auto o = clay_env(api);
        std::string url = "http://127.0.0.1:" + std::to_string(closed_port());
        o.env["CLAY_API_URL"] = url;
        auto r = cli({"webhooks", "list"}, o);
        INFO(r.out << r.err);
        CHECK(r.code == 7);
        CHECK_THAT(r.err, Catch::Contains("cannot reach Clay at " + url + "/v1/webhooks"));
        CHECK_THAT(r.err, Catch::Contains("connection refused"));
    }
    SECTION("an unusable API URL is a usage error") {
        auto o = clay_env(api);
        o.env["CLAY_API_URL"] = "ftp://example.com";
        auto r = cli({"webhooks", "list"}, o);
        CHECK(r.code == 2);
        CHECK_THAT(r.err, Catch::Contains("not an http:// or https:// URL"));
    }
}

// ---------------------------------------------------------------------------
// The client in-process: the call the retry scheduler will make, and the
// Retry-After forms.

TEST_CASE("ClayApi::enrich_row posts the column and takes the 202", "[clay][api]") {
    FakeClayApi api;
    clayhook::ClayApiOptions o;
    o.base_url = api.base_url() + "/";  // a trailing slash is tolerated
    o.api_key = api.api_key();
    clayhook::ClayApi client(o);
    client.enrich_row("t_abc123", "row_00000043", "Email Finder");
    auto reqs = api.requests();
    REQUIRE(reqs.size() == 1);
    CHECK(reqs[0].method == "POST");
    CHECK(reqs[0].path == "/v1/tables/t_abc123/rows/row_00000043/enrich");
    CHECK(reqs[0].authorization == "Bearer " + api.api_key());
    CHECK(json::parse(reqs[0].body).get_string("column", "") == "Email Finder");

    // An id cannot step outside its path segment.
    client.enrich_row("t_1", "../../webhooks", "c");
    CHECK(api.requests().back().path == "/v1/tables/t_1/rows/..%2F..%2Fwebhooks/enrich");

    try {
        client.enrich_row("t_1", "row_1", "");
        FAIL("a 422 was expected");
    } catch (const clayhook::ClayApiError& e) {
        CHECK(e.kind == clayhook::ClayErrorKind::validation);
        CHECK(e.status == 422);
        CHECK(e.error == "validation_error");
        CHECK(e.details == std::vector<std::string>{"column: is required"});
    }
}

TEST_CASE("Retry-After is read as seconds or as an HTTP date", "[clay][api]") {
    using clayhook::parse_retry_after;
    CHECK(parse_retry_after("7") == std::chrono::seconds(7));
    CHECK(parse_retry_after(" 0 ") == std::chrono::seconds(0));
    CHECK(parse_retry_after("99999999999999999999") == std::chrono::seconds(999'999));
    CHECK(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == std::chrono::seconds(0));
    auto future = parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT");
    REQUIRE(future);
    CHECK(*future > std::chrono::hours(24));
    CHECK_FALSE(parse_retry_after(""));
    CHECK_FALSE(parse_retry_after("soon"));
    CHECK_FALSE(parse_retry_after("-5"));
}

TEST_CASE("ClayApi refuses to start without a key or with an unusable URL", "[clay][api]") {
    clayhook::ClayApiOptions o;
    o.api_key = "";
    CHECK_THROWS_AS(clayhook::ClayApi(o), clayhook::ClayApiError);
    o.api_key = "k";
    o.base_url = "api.clay.com";
    try {
        clayhook::ClayApi client(o);
        FAIL("bad_url was expected");
    } catch (const clayhook::ClayApiError& e) {
        CHECK(e.kind == clayhook::ClayErrorKind::bad_url);
    }
}

TEST_CASE("https: the certificate chain and the host name are both checked", "[clay][cli]") {
    // A throwaway CA, a certificate for localhost and one for another name.
    const TestPki& pki = TestPki::shared();
    SECTION("a certificate from a trusted CA for the right name is accepted") {
        FakeClayApi api("test-clay-api-key", {pki.good_cert, pki.good_key});
        auto o = clay_env(api);
        o.env["SSL_CERT_FILE"] = pki.ca;
        for (const std::string host : {"127.0.0.1", "localhost"}) {
            auto r = cli({"webhooks", "list", "--api-url",
                          "https://" + host + ":" + std::to_string(api.port())},
                         o);
            INFO(r.out << r.err);
            CHECK(r.code == 0);
        }
        CHECK(api.requests().size() == 2);
    }
    SECTION("an untrusted CA is refused (exit 7)") {
        FakeClayApi api("test-clay-api-key", {pki.good_cert, pki.good_key});
        auto r = cli({"webhooks", "list"}, clay_env(api));  // the system bundle only
        INFO(r.out << r.err);
        CHECK(r.code == 7);
        CHECK_THAT(r.err, Catch::Contains("certificate verify failed"));
        CHECK(api.requests().empty());
    }
    SECTION("a trusted certificate for another name is refused (exit 7)") {
        FakeClayApi api("test-clay-api-key", {pki.other_cert, pki.other_key});
        auto o = clay_env(api);
        o.env["SSL_CERT_FILE"] = pki.ca;
        auto r = cli(
            {"webhooks", "list", "--api-url", "https://localhost:" + std::to_string(api.port())},
            o);
        INFO(r.out << r.err);
        CHECK(r.code == 7);
        CHECK_THAT(r.err, Catch::Contains("TLS certificate refused"));
        CHECK(api.requests().empty());
    }
}

// ---------------------------------------------------------------------------
// sign

TEST_CASE("sign prints the headers of each scheme, and the verifier accepts them",
          "[clay][cli][sign]") {
    TempDir dir;
    SchemeSecrets secrets;
    auto cfg = schemes_config(dir, secrets, 8080);
    const std::string body =
        R"({"event":"enrichment.completed","table_id":"t_abc123","row_id":"row_1","timestamp":"2026-11-26T12:00:42.042Z"})";
    auto body_file = dir.write("body.json", body);
    auto config = clayhook::load_config(cfg, {});
    auto source = [&](const std::string& name) -> const clayhook::SourceConfig& {
        for (const auto& s : config.sources)
            if (s.name == name) return s;
        FAIL("no source " << name);
        throw std::logic_error("unreachable");
    };
    Subprocess::Options o;
    o.unset_env = {"CLAYHOOK_CONFIG"};
    const auto now = std::chrono::system_clock::now();
    auto verify = [&](const std::string& name, const std::map<std::string, std::string>& h) {
        clayhook::Verifier v(source(name).verify);
        return v.verify(
            body,
            [&h](std::string_view k) -> const std::string* {
                auto it = h.find(std::string(k));
                return it == h.end() ? nullptr : &it->second;
            },
            now);
    };

    SECTION("hmac-sha256") {
        auto r = cli({"sign", "--config", cfg, "--source", "hmac", body_file}, o);
        INFO(r.out << r.err);
        REQUIRE(r.code == 0);
        auto h = parse_headers(r.out);
        CHECK(h.size() == 1);
        CHECK(h["x-clay-signature"] == clayhook::hmac_sha256_hex(secrets.hmac, body));
        CHECK(verify("hmac", h) == clayhook::VerifyFailure::none);
        CHECK_FALSE(has_secret(r, secrets));
    }
    SECTION("hmac-sha256-timestamp") {
        auto r = cli({"sign", "--config", cfg, "--source", "hmac-ts", body_file}, o);
        INFO(r.out << r.err);
        REQUIRE(r.code == 0);
        auto h = parse_headers(r.out);
        CHECK(h.size() == 2);
        REQUIRE(h.count("x-clay-timestamp") == 1);
        CHECK(h["x-clay-signature"] ==
              clayhook::hmac_sha256_hex(secrets.hmac_ts, h["x-clay-timestamp"] + "." + body));
        CHECK(verify("hmac-ts", h) == clayhook::VerifyFailure::none);
        CHECK_FALSE(has_secret(r, secrets));

        // --timestamp pins it: the output is then reproducible.
        auto fixed = cli({"sign", "--config", cfg, "--source", "hmac-ts", "--timestamp",
                          "1700000000", body_file},
                         o);
        auto hf = parse_headers(fixed.out);
        CHECK(hf["x-clay-timestamp"] == "1700000000");
        CHECK(hf["x-clay-signature"] ==
              clayhook::hmac_sha256_hex(secrets.hmac_ts, "1700000000." + body));
    }
    SECTION("standard-webhooks") {
        auto r = cli({"sign", "--config", cfg, "--source", "standard", body_file}, o);
        INFO(r.out << r.err);
        REQUIRE(r.code == 0);
        auto h = parse_headers(r.out);
        CHECK(h.size() == 3);
        CHECK_THAT(h["webhook-id"], Catch::StartsWith("msg_"));
        CHECK_THAT(h["webhook-signature"], Catch::StartsWith("v1,"));
        CHECK(verify("standard", h) == clayhook::VerifyFailure::none);
        CHECK_FALSE(has_secret(r, secrets));

        auto with_id = cli(
            {"sign", "--config", cfg, "--source", "standard", "--id", "msg_fixed", body_file}, o);
        CHECK(parse_headers(with_id.out)["webhook-id"] == "msg_fixed");
    }
    SECTION("token: the header is the secret itself, so it is named, not printed") {
        auto r = cli({"sign", "--config", cfg, "--source", "token", body_file}, o);
        INFO(r.out << r.err);
        REQUIRE(r.code == 0);
        auto h = parse_headers(r.out);
        REQUIRE(h.count("x-clay-webhook-auth") == 1);
        CHECK_THAT(h["x-clay-webhook-auth"], Catch::Contains("file:" + dir.file("secrets/token")));
        CHECK_THAT(r.err, Catch::Contains("not printed"));
        CHECK_FALSE(has_secret(r, secrets));
        // The placeholder is no token; the real one (what send attaches) is.
        CHECK(verify("token", h) == clayhook::VerifyFailure::bad_signature);
        CHECK(verify("token", {{"x-clay-webhook-auth", secrets.token}}) ==
              clayhook::VerifyFailure::none);
    }
    SECTION("the body from stdin") {
        auto r = run(
            {"/bin/sh", "-c",
             "printf '%s' \"$BODY\" | \"$BIN\" sign --config \"$CFG\" --source hmac -"},
            [&] {
                Subprocess::Options so = o;
                so.env["BODY"] = body;
                so.env["BIN"] = kClayhookBin;
                so.env["CFG"] = cfg;
                return so;
            }(),
            60s);
        INFO(r.out << r.err);
        REQUIRE(r.code == 0);
        CHECK(parse_headers(r.out)["x-clay-signature"] ==
              clayhook::hmac_sha256_hex(secrets.hmac, body));
    }
    SECTION("usage and config mistakes") {
        auto unknown = cli({"sign", "--config", cfg, "--source", "nope", body_file}, o);
        CHECK(unknown.code == 2);
        CHECK_THAT(unknown.err, Catch::Contains("no source 'nope'"));
        auto which = cli({"sign", "--config", cfg, body_file}, o);
        CHECK(which.code == 2);
        CHECK_THAT(which.err, Catch::Contains("--source is required"));
        auto no_body = cli({"sign", "--config", cfg, "--source", "hmac"}, o);
        CHECK(no_body.code == 2);
        auto missing =
            cli({"sign", "--config", cfg, "--source", "hmac", dir.file("missing.json")}, o);
        CHECK(missing.code == 1);
        CHECK_THAT(missing.err, Catch::Contains("cannot read"));
    }
}

TEST_CASE("sign refuses a source whose secret does not resolve, naming its reference",
          "[clay][cli][sign]") {
    TempDir dir;
    auto cfg = dir.write("c.yaml", R"(admin: {enabled: false}
sources:
  - name: clay
    path: /webhooks/clay
    verify:
      scheme: hmac-sha256
      secrets: ["${CLAYHOOK_SIGN_TEST_UNSET}"]
)");
    auto body = dir.write("b.json", "{}");
    Subprocess::Options o;
    o.unset_env = {"CLAYHOOK_SIGN_TEST_UNSET", "CLAYHOOK_CONFIG"};
    auto r = cli({"sign", "--config", cfg, body}, o);
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Catch::Contains("no usable secret"));
    CHECK_THAT(r.err, Catch::Contains("CLAYHOOK_SIGN_TEST_UNSET"));
}

// ---------------------------------------------------------------------------
// send, against the host itself

namespace {

// `clayhook serve` on port 0 with one source per scheme.
struct Host : HostProcess {
    SchemeSecrets secrets;

    Host() {
        schemes_config(dir, secrets, 0, std::filesystem::path(config).filename().string());
        options.env["CLAYHOOK_PLUGIN_DIR"] = kBundledPluginDir;
        start();
    }
};

Subprocess::Options send_env() {
    Subprocess::Options o;
    o.unset_env = {"CLAYHOOK_CONFIG"};
    return o;
}

}  // namespace

TEST_CASE("send signs a sample for every scheme and the host accepts it", "[clay][cli][send]") {
    Host host;
    for (const std::string name : {"hmac", "hmac-ts", "token", "standard"}) {
        auto r = cli({"send", "--config", host.config, "--source", name, "--url",
                      host.url("/webhooks/" + name), "--sample", "enrichment.completed"},
                     send_env());
        INFO(name << ":\n" << r.out << r.err);
        CHECK(r.code == 0);
        CHECK_THAT(r.out, Catch::StartsWith("HTTP 200"));
        CHECK_THAT(r.out, Catch::Contains(R"("received":true)"));
        CHECK_FALSE(has_secret(r, host.secrets));
    }
    CHECK(host.err().find("verification failed") == std::string::npos);
}

TEST_CASE("send --sample all sends each of the six event types", "[clay][cli][send]") {
    Host host;
    auto r = cli({"send", "--config", host.config, "--source", "standard", "--url",
                  host.url("/webhooks/standard"), "--sample", "all"},
                 send_env());
    INFO(r.out << r.err);
    CHECK(r.code == 0);
    for (const auto& t : clayhook::clay_event_catalogue())
        CHECK_THAT(r.out, Catch::Contains(t + ": HTTP 200"));
    size_t received = 0;
    for (size_t at = r.out.find(R"("received":true)"); at != std::string::npos;
         at = r.out.find(R"("received":true)", at + 1))
        ++received;
    CHECK(received == 6);
    // Fresh ids: none of the six was taken for a retry of another.
    CHECK(r.out.find(R"("duplicate":true)") == std::string::npos);
}

TEST_CASE("send posts a body file to the listener's own URL by default", "[clay][cli][send]") {
    Host host;
    // A client config naming the port the host picked, so no --url is needed.
    auto client = schemes_config(host.dir, host.secrets, host.port(), "client.yaml");
    auto body = host.dir.write(
        "body.json",
        R"({"event":"table.row.created","table_id":"t_abc123","row_id":"row_00000044","timestamp":"2026-11-26T12:00:44.044Z","data":{"email":"person44@example.com"}})");
    auto r = cli({"send", "--config", client, "--source", "hmac-ts", body}, send_env());
    INFO(r.out << r.err);
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Catch::Contains("HTTP 200"));
    CHECK_THAT(r.out, Catch::Contains(R"("received":true)"));
    // The same body again is Clay retrying: still 200, marked duplicate.
    auto again = cli({"send", "--config", client, "--source", "hmac-ts", body}, send_env());
    CHECK(again.code == 0);
    CHECK_THAT(again.out, Catch::Contains(R"("duplicate":true)"));
}

TEST_CASE("send exits 1 on a non-2xx answer and 7 when nothing answers", "[clay][cli][send]") {
    Host host;
    SECTION("signed with the wrong secret: 401") {
        TempDir other;
        SchemeSecrets wrong;
        wrong.hmac = "not-the-hosts-secret-0123456789";
        auto cfg = schemes_config(other, wrong, 0);
        auto r = cli({"send", "--config", cfg, "--source", "hmac", "--url",
                      host.url("/webhooks/hmac"), "--sample", "workflow.completed"},
                     send_env());
        INFO(r.out << r.err);
        CHECK(r.code == 1);
        CHECK_THAT(r.out, Catch::StartsWith("HTTP 401"));
        // Which secret it signed with, by where it came from, never by value.
        CHECK_THAT(r.err,
                   Catch::Contains("clayhook send: the host refused the signature (401); signed "
                                   "with source 'hmac' secret #1 from file " +
                                   other.file("secrets/hmac") +
                                   " \u2014 is the host using the same secret?\n"));
        CHECK_FALSE(has_secret(r, wrong));
        CHECK_FALSE(has_secret(r, host.secrets));
    }
    SECTION("signed with a wrong secret from the environment: 401 names the variable") {
        TempDir other;
        const std::string wrong = "env-secret-the-host-does-not-have-42";
        auto cfg = other.write("c.yaml", R"(admin: {enabled: false}
sources:
  - name: clay
    path: /webhooks/hmac
    verify:
      scheme: hmac-sha256
      header: x-clay-signature
      secrets: ["${CLAYHOOK_SEND_TEST_UNSET}", "${CLAYHOOK_SEND_TEST_SECRET}"]
)");
        Subprocess::Options o = send_env();
        o.env["CLAYHOOK_SEND_TEST_SECRET"] = wrong;
        o.unset_env.push_back("CLAYHOOK_SEND_TEST_UNSET");
        auto r = cli(
            {"send", "--config", cfg, "--url", host.url("/webhooks/hmac"), "--sample", "all"}, o);
        INFO(r.out << r.err);
        CHECK(r.code == 1);
        CHECK_THAT(r.out, Catch::Contains("workflow.completed: HTTP 401"));
        // The first secret does not resolve here: the second signed.
        CHECK_THAT(r.err, Catch::Contains("signed with source 'clay' secret #2 from environment "
                                          "variable CLAYHOOK_SEND_TEST_SECRET"));
        // Said once, not once per sample.
        CHECK(r.err.find("refused the signature") == r.err.rfind("refused the signature"));
        CHECK(r.out.find(wrong) == std::string::npos);
        CHECK(r.err.find(wrong) == std::string::npos);
    }
    SECTION("accepted: no such message") {
        auto r = cli({"send", "--config", host.config, "--source", "hmac", "--url",
                      host.url("/webhooks/hmac"), "--sample", "workflow.completed"},
                     send_env());
        CHECK(r.code == 0);
        CHECK(r.err.find("refused the signature") == std::string::npos);
    }
    SECTION("connection refused") {
        std::string url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/webhooks/hmac";
        auto r = cli({"send", "--config", host.config, "--source", "hmac", "--url", url, "--sample",
                      "table.row.updated"},
                     send_env());
        INFO(r.out << r.err);
        CHECK(r.code == 7);
        CHECK_THAT(r.err, Catch::Contains("cannot reach the host at " + url));
        CHECK_THAT(r.err, Catch::Contains("connection refused"));
    }
    SECTION("usage: an unknown sample type, or no URL for a port-0 listener") {
        auto r =
            cli({"send", "--config", host.config, "--source", "hmac", "--sample", "row.exploded"},
                send_env());
        CHECK(r.code == 2);
        CHECK_THAT(r.err, Catch::Contains("unknown --sample 'row.exploded'"));
        auto r2 = cli({"send", "--config", host.config, "--source", "hmac", "--sample", "all"},
                      send_env());
        CHECK(r2.code == 2);
        CHECK_THAT(r2.err, Catch::Contains("pass --url"));
    }
}
