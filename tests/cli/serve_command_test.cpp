// `clayhook serve` as a real child process: loads, reports ready, survives a
// broken plugin, exits 0 on SIGTERM and SIGINT, refuses a broken config.
#include "support/HostProcess.h"
#include "support/Subprocess.h"
#include "support/TempDir.h"
#include "support/TestPaths.h"

#include <Poco/JSON/Parser.h>

#include <catch2/catch.hpp>

#include <signal.h>

#include <sstream>

using namespace clayhook::test;
using namespace std::chrono_literals;

namespace {

// A config whose store and sink live in `dir`: the sink, and a plugin that
// cannot load.
std::string config_with_plugins(const TempDir& dir) {
    return std::string(R"(admin: {enabled: false}
listener: {address: 127.0.0.1, port: 0}
store: {path: )") +
           dir.file("var/clayhook.db") +
           R"(}
sources:
  - name: clay
    path: /webhooks/clay
    verify:
      scheme: hmac-sha256
      secrets: ["${CLAYHOOK_SERVE_SECRET}"]
plugins:
  - name: sink
    library: bundled:jsonl-sink
    config:
      path: )" +
           dir.file("events.jsonl") +
           R"(
  - name: broken
    library: )" +
           kFixturePluginDir +
           R"(/no_entry.so
)";
}

const std::map<std::string, std::string> kEnv = {
    {"CLAYHOOK_PLUGIN_DIR", kBundledPluginDir},
    {"CLAYHOOK_SERVE_SECRET", "serve-test-secret-0123"},
};

Subprocess::Options opts() {
    Subprocess::Options o;
    o.env = kEnv;
    return o;
}

// A host on config_with_plugins, started (ready).
void start_with_plugins(HostProcess& host) {
    host.options.env.insert(kEnv.begin(), kEnv.end());
    host.write_config(config_with_plugins(host.dir));
    host.start();
}

}  // namespace

TEST_CASE("serve reports ready with a broken plugin refused, and exits 0 on SIGTERM",
          "[cli][serve]") {
    HostProcess host;
    start_with_plugins(host);
    auto err = host.err();
    CHECK_THAT(err, Catch::Contains("msg=\"plugin loaded\" plugin=sink kind=jsonl-sink"));
    CHECK_THAT(err, Catch::Contains("does not export clayhook_plugin_entry"));
    CHECK_THAT(err, Catch::Contains("plugins=1 refused=1"));
    // A reload is all or nothing: with the broken plugin still in the
    // config it is refused, and the running generation keeps serving.
    host.signal(SIGHUP);
    REQUIRE(
        host.wait_for_output("msg=\"reload failed; the running generation keeps serving\"", 30s));
    CHECK_THAT(host.err(), Catch::Contains("generation=1"));
    host.signal(SIGTERM);
    CHECK(host.wait(30s) == 0);
    CHECK_THAT(host.err(), Catch::Contains("msg=stopped"));
    CHECK(host.err().find("serve-test-secret-0123") == std::string::npos);
}

TEST_CASE("serve exits 0 on SIGINT", "[cli][serve]") {
    HostProcess host;
    start_with_plugins(host);
    host.signal(SIGINT);
    CHECK(host.wait(30s) == 0);
}

TEST_CASE("serve refuses to start on a config error or an unresolved secret", "[cli][serve]") {
    TempDir dir;
    auto bad = dir.write("bad.yaml", "sources:\n  - name: clay\n    paht: /x\n");
    auto r = run({kClayhookBin, "serve", "--config", bad}, opts(), 30s);
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Catch::Contains(bad + ":3:5: sources[0].paht: unknown key"));

    auto o = opts();
    o.unset_env.push_back("CLAYHOOK_SERVE_SECRET");
    o.env.erase("CLAYHOOK_SERVE_SECRET");
    auto r2 = run(
        {kClayhookBin, "serve", "--config", dir.write("c.yaml", config_with_plugins(dir))}, o, 30s);
    CHECK(r2.code == 1);
    CHECK_THAT(r2.err, Catch::Contains("CLAYHOOK_SERVE_SECRET is not set"));
}

TEST_CASE("a second serve on the same SQLite file refuses to start, naming the holder",
          "[cli][serve]") {
    HostProcess host;
    start_with_plugins(host);
    auto ready = host.err();
    auto at = ready.find("host_id=");
    REQUIRE(at != std::string::npos);
    const std::string holder = ready.substr(at + 8, ready.find(' ', at) - at - 8);
    CHECK_THAT(ready, Catch::Contains("store=sqlite:" + host.dir.file("var/clayhook.db")));

    // The same config (same store) from a second process: refused, the first
    // keeps serving.
    auto r = run({kClayhookBin, "serve", "--config", host.config}, opts(), 30s);
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Catch::Contains("in use by another clayhook process (held by " + holder));
    CHECK_THAT(r.err, Catch::Contains(host.dir.file("var/clayhook.db") + ".lock"));
    host.signal(SIGTERM);
    CHECK(host.wait(30s) == 0);
    // Once it stopped, the file is free again.
    HostProcess again;
    again.options.env.insert(kEnv.begin(), kEnv.end());
    again.write_config(config_with_plugins(host.dir));
    again.start();
    again.signal(SIGTERM);
    CHECK(again.wait(30s) == 0);
}

TEST_CASE("serve with log.format json writes every line as a JSON object", "[cli][serve][log]") {
    TempDir dir;
    auto o = opts();
    o.env["TMPDIR"] = dir.path().string();
    o.unset_env = {"CLAYHOOK_CONFIG", "JOURNAL_STREAM"};
    auto file = dir.write("c.yaml", config_with_plugins(dir) + "log: {format: json}\n");
    Subprocess serve({kClayhookBin, "serve", "--config", file}, o);
    REQUIRE(serve.wait_for_output("\"msg\":\"ready\"", 30s));
    serve.signal(SIGTERM);
    CHECK(serve.wait(30s) == 0);
    const std::string err = serve.err();
    CHECK_THAT(err, Catch::Contains("\"msg\":\"plugin loaded\",\"plugin\":\"sink\""));
    CHECK_THAT(err, Catch::Contains("\"msg\":\"stopped\""));
    CHECK(err.find("serve-test-secret-0123") == std::string::npos);
    std::istringstream lines(err);
    int n = 0;
    for (std::string line; std::getline(lines, line); ++n) {
        INFO(line);
        Poco::JSON::Parser parser;
        CHECK(parser.parse(line).extract<Poco::JSON::Object::Ptr>()->has("level"));
    }
    CHECK(n >= 4);
}
