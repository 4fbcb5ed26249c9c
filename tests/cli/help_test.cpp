// The CLI's help (`clayhook help [COMMAND]`, `COMMAND --help`), `version`,
// the default config file, and what `clayhook reload` says about the file
// the host reloaded.
#include "support/Subprocess.h"
#include "support/TempDir.h"
#include "support/TestPaths.h"

#include "clay/ClayApi.h"
#include "cli/Commands.h"
#include "cli/DefaultConfig.h"
#include "plugins/AbiVersion.h"

#include <clayhook/json.hpp>

#include <catch2/catch.hpp>

#include <signal.h>

#include <filesystem>
#include <memory>
#include <sstream>

using namespace clayhook;
using namespace clayhook::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

struct Ran {
    int code = -1;
    std::string out, err;
};

// run_cli in this process.
Ran cli(const std::vector<std::string>& args) {
    std::ostringstream out, err;
    Ran r;
    r.code = run_cli(args, out, err);
    r.out = out.str();
    r.err = err.str();
    return r;
}

// The real binary, with nothing of the developer's CLAYHOOK_CONFIG.
RunResult bin(std::vector<std::string> args, Subprocess::Options o = {}) {
    args.insert(args.begin(), kClayhookBin);
    o.unset_env.push_back("CLAYHOOK_CONFIG");
    return run(args, o, 60s);
}

const std::vector<std::string> kCommands = {
    "serve",      "check",  "version", "help", "register", "webhooks", "sign",  "send",
    "deliveries", "events", "replay",  "kill", "plugins",  "reload",   "backup"};

size_t count_of(const std::string& hay, const std::string& needle) {
    size_t n = 0;
    for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1))
        ++n;
    return n;
}

}  // namespace

// ---------------------------------------------------------------------------
// The default config

TEST_CASE("default config: $CLAYHOOK_CONFIG, else the checkout's, else the installed one",
          "[cli][config]") {
    TempDir dir;
    const std::string installed = dir.file("etc/clayhook/clayhook.yaml");
    SECTION("$CLAYHOOK_CONFIG when set and not empty, whatever exists") {
        dir.write("config/clayhook.yaml", "{}");
        CHECK(default_config_file("/x/mine.yaml", dir.path().string(), installed) ==
              "/x/mine.yaml");
        CHECK(default_config_file("rel.yaml", dir.path().string(), installed) == "rel.yaml");
    }
    SECTION("empty or unset: the checkout's config/clayhook.yaml when it exists") {
        dir.write("config/clayhook.yaml", "{}");
        dir.write("etc/clayhook/clayhook.yaml", "{}");
        CHECK(default_config_file("", dir.path().string(), installed) == "config/clayhook.yaml");
        CHECK(default_config_file(nullptr, dir.path().string(), installed) ==
              "config/clayhook.yaml");
    }
    SECTION("no checkout config: the installed one, also when it does not exist") {
        CHECK(default_config_file(nullptr, dir.path().string(), installed) == installed);
        dir.write("etc/clayhook/clayhook.yaml", "{}");
        CHECK(default_config_file("", dir.path().string(), installed) == installed);
        // A folder named config/ without the file is no checkout config.
        fs::create_directories(dir.path() / "config");
        CHECK(default_config_file(nullptr, dir.path().string(), installed) == installed);
    }
    SECTION("the installed path is the build's sysconfdir's") {
        const std::string i = installed_config_file();
        CHECK(fs::path(i).is_absolute());
        CHECK_THAT(i, Catch::EndsWith("/clayhook/clayhook.yaml"));
    }
}

TEST_CASE(
    "default config: each command reads the same file, and names the installed one when "
    "nothing else exists",
    "[cli][config]") {
    TempDir empty;
    Subprocess::Options o;
    o.cwd = empty.path().string();
    const std::string installed = installed_config_file();
    REQUIRE_FALSE(fs::exists(installed));  // a build host with nothing installed
    for (std::vector<std::string> args : {std::vector<std::string>{"check"},
                                          {"backup", empty.file("out.db")},
                                          {"reload"},
                                          {"sign", "-"},
                                          {"deliveries", "list"}}) {
        auto r = bin(args, o);
        INFO(args[0] << ": " << r.out << r.err);
        CHECK(r.code == 1);
        CHECK_THAT(r.out + r.err, Catch::Contains(installed));
    }
    // $CLAYHOOK_CONFIG first; an empty one counts as unset.
    Subprocess::Options env = o;
    env.env["CLAYHOOK_CONFIG"] = empty.file("from-env.yaml");
    auto e = run({kClayhookBin, "check"}, env, 60s);
    CHECK(e.code == 1);
    CHECK_THAT(e.out + e.err, Catch::Contains(empty.file("from-env.yaml")));
    env.env["CLAYHOOK_CONFIG"] = "";
    auto blank = run({kClayhookBin, "check"}, env, 60s);
    CHECK_THAT(blank.out + blank.err, Catch::Contains(installed));
    // In a checkout: its config/clayhook.yaml.
    empty.write("config/clayhook.yaml", "listener: {port: nope}\n");
    auto checkout = bin({"check"}, o);
    CHECK(checkout.code == 1);
    CHECK_THAT(checkout.out + checkout.err, Catch::Contains("config/clayhook.yaml"));
    CHECK((checkout.out + checkout.err).find(installed) == std::string::npos);
}

// ---------------------------------------------------------------------------
// help

TEST_CASE("help: the overview lists every command, with the default config and exit codes",
          "[cli][help]") {
    auto r = cli({"help"});
    CHECK(r.code == 0);
    CHECK(r.err.empty());
    CHECK_THAT(r.out, Catch::StartsWith("usage: clayhook <command> [options]"));
    for (const auto& c : kCommands)
        CHECK_THAT(r.out, Catch::Contains("\n  " + c + " "));
    for (const char* form : {"webhooks list", "webhooks delete ID", "events list", "events show ID",
                             "plugins pause NAME", "plugins resume NAME", "deliveries list"})
        CHECK_THAT(r.out, Catch::Contains(form));
    CHECK_THAT(r.out,
               Catch::Contains("FILE defaults to $CLAYHOOK_CONFIG, else config/clayhook.yaml "
                               "when it exists\nhere (a source checkout), else " +
                               installed_config_file() + " (installed)"));
    CHECK_THAT(r.out, Catch::Contains("7 network failure"));
    // What each group's heading explains is left out of its forms.
    CHECK(r.out.find("[--admin URL]") == std::string::npos);
    CHECK(r.out.find("[--api-url URL]") == std::string::npos);
    // --help, -h: the same; nothing at all: the same on stderr, exit 2.
    CHECK(cli({"--help"}).out == r.out);
    CHECK(cli({"-h"}).out == r.out);
    auto none = cli({});
    CHECK(none.code == 2);
    CHECK(none.out.empty());
    CHECK(none.err == r.out);
    // No line of it runs past 90 columns.
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
        INFO(line);
        CHECK(line.size() <= 90);
    }
}

TEST_CASE("help COMMAND and COMMAND --help print that command's help only, exit 0", "[cli][help]") {
    for (const auto& c : kCommands) {
        auto h = cli({"help", c});
        INFO(c << ":\n" << h.out << h.err);
        CHECK(h.code == 0);
        CHECK(h.err.empty());
        CHECK_THAT(h.out, Catch::StartsWith("usage: clayhook " + c));
        CHECK_THAT(h.out, Catch::Contains("exit codes: 0"));
        // Only this command: no other command's usage line.
        for (const auto& other : kCommands)
            if (other != c) CHECK(h.out.find("clayhook " + other + " ") == std::string::npos);
        if (c == "help") continue;
        CHECK_THAT(h.out, Catch::Contains("--help, -h"));
        for (const char* flag : {"--help", "-h"}) {
            auto f = cli({c, flag});
            CHECK(f.code == 0);
            CHECK(f.out == h.out);
            CHECK(f.err.empty());
        }
    }
    // Its options and exit codes.
    auto send = cli({"help", "send"}).out;
    CHECK_THAT(send, Catch::Contains("--sample TYPE"));
    CHECK_THAT(send, Catch::Contains("--url URL"));
    CHECK_THAT(send, Catch::Contains("(401)"));
    CHECK_THAT(send, Catch::Contains("7 the\nhost did not answer"));
    CHECK_THAT(send, Catch::Contains("FILE defaults to $CLAYHOOK_CONFIG"));
    auto deliveries = cli({"help", "deliveries"}).out;
    CHECK_THAT(deliveries, Catch::Contains("--admin URL"));  // the group's options
    CHECK_THAT(deliveries, Catch::Contains("4 the admin API\nrefused the token (401)"));
    auto reg = cli({"help", "register"}).out;
    CHECK_THAT(reg, Catch::Contains("3 CLAY_API_KEY not set"));
    CHECK(reg.find("FILE defaults to") == std::string::npos);  // it reads no config
}

TEST_CASE("help: subcommands show their command's forms, and unknown ones are usage errors",
          "[cli][help]") {
    auto events = cli({"help", "events"});
    CHECK(events.code == 0);
    CHECK_THAT(events.out, Catch::StartsWith("usage: clayhook events list"));
    CHECK_THAT(events.out, Catch::Contains("\n       clayhook events show ID"));
    CHECK(cli({"help", "events", "show"}).out == events.out);
    CHECK(cli({"events", "show", "--help"}).out == events.out);
    CHECK(count_of(cli({"help", "plugins"}).out, "clayhook plugins") == 3);
    CHECK(cli({"help", "plugins", "list"}).code == 0);  // list is optional, still named
    CHECK(cli({"help", "webhooks", "delete"}).code == 0);
    CHECK(cli({"help", "deliveries", "list"}).code == 0);

    auto unknown = cli({"help", "frobnicate"});
    CHECK(unknown.code == 2);
    CHECK(unknown.out.empty());
    CHECK_THAT(unknown.err, Catch::Contains("no command 'frobnicate'"));
    auto sub = cli({"help", "webhooks", "purge"});
    CHECK(sub.code == 2);
    CHECK_THAT(sub.err, Catch::Contains("webhooks has no subcommand 'purge' (list, delete)"));
    CHECK(cli({"help", "send", "list"}).code == 2);
    CHECK(cli({"help", "events", "list", "more"}).code == 2);
}

TEST_CASE("--help anywhere among a command's arguments shows the help and runs nothing",
          "[cli][help]") {
    // Each would fail (usage error, no config, no host) if it ran.
    auto r = bin({"send", "--sample", "x", "--help"});
    INFO(r.out << r.err);
    CHECK(r.code == 0);
    CHECK(r.err.empty());
    CHECK(r.out == cli({"help", "send"}).out);
    auto reload = bin({"reload", "--config", "/nonexistent.yaml", "-h", "--admin", "nope"});
    CHECK(reload.code == 0);
    CHECK_THAT(reload.out, Catch::StartsWith("usage: clayhook reload"));
    auto kill = bin({"kill", "--bogus", "--help"});
    CHECK(kill.code == 0);
    CHECK_THAT(kill.out, Catch::StartsWith("usage: clayhook kill"));
    // After `--` it is an argument: sign tries to read the config.
    auto after = bin({"sign", "--config", "/nonexistent.yaml", "--", "--help"});
    CHECK(after.code == 1);
    CHECK(after.out.empty());
    // An unknown command is an error with or without --help.
    auto unknown = bin({"frobnicate", "--help"});
    CHECK(unknown.code == 2);
    CHECK_THAT(unknown.err, Catch::Contains("unknown command 'frobnicate'"));
}

TEST_CASE("usage errors print the command's usage lines and point at its help", "[cli][help]") {
    auto send = cli({"send"});
    CHECK(send.code == 2);
    CHECK(send.out.empty());
    CHECK_THAT(send.err, Catch::StartsWith("clayhook send: BODY_FILE (or - for stdin) or --sample "
                                           "TYPE is required\nusage: clayhook send "));
    CHECK_THAT(send.err, Catch::Contains("Run 'clayhook help send' for its options"));
    CHECK(send.err.find("--sample TYPE   a generated") == std::string::npos);  // not the help
    auto check = cli({"check", "--json", "extra"});
    CHECK(check.code == 2);
    CHECK_THAT(check.err, Catch::Contains("clayhook check: unexpected argument 'extra'\n"
                                          "usage: clayhook check [--config FILE] [--json]\n"));
    auto serve = cli({"serve", "--json"});
    CHECK(serve.code == 2);
    CHECK_THAT(serve.err, Catch::Contains("unexpected argument '--json'"));
    auto events = cli({"events", "list", "--limit", "0"});
    CHECK(events.code == 2);
    CHECK_THAT(events.err, Catch::Contains("Run 'clayhook help events'"));
}

// ---------------------------------------------------------------------------
// version

TEST_CASE("version, --version, -V and version --json", "[cli][version]") {
    const std::string abi = host_abi().str();
    auto v = bin({"version"});
    CHECK(v.code == 0);
    CHECK_THAT(v.out, Catch::Matches(R"(clayhook \d+\.\d+\.\d+\S* \(plugin ABI )" + abi + R"(\)
)"));
    CHECK(bin({"--version"}).out == v.out);
    CHECK(bin({"-V"}).out == v.out);

    auto j = bin({"version", "--json"});
    CHECK(j.code == 0);
    auto doc = json::parse(j.out);
    CHECK(doc.size() == 2);
    CHECK(doc.get_string("abi", "") == abi);
    const std::string version = doc.get_string("version", "");
    CHECK_FALSE(version.empty());
    CHECK(v.out == "clayhook " + version + " (plugin ABI " + abi + ")\n");
    CHECK(bin({"--version", "--json"}).out == j.out);

    CHECK(bin({"version", "extra"}).code == 2);
    CHECK(bin({"version", "--yaml"}).code == 2);
}

// ---------------------------------------------------------------------------
// reload names the file the host reloaded

namespace {

const char* kToken = "help-test-admin-token";

// `clayhook serve --config c.yaml` started in its folder (a relative path,
// as an operator types it), admin API on port 0.
struct RelativeHost {
    TempDir dir;
    std::unique_ptr<Subprocess> proc;
    uint16_t admin_port = 0;

    RelativeHost() {
        dir.write("c.yaml", R"(admin: {address: 127.0.0.1, port: 0, token: "${HELP_TEST_TOKEN}"}
listener: {address: 127.0.0.1, port: 0}
store: {path: var/clayhook.db}
sources:
  - name: clay
    path: /webhooks/clay
    verify: {scheme: hmac-sha256, secrets: ["${HELP_TEST_SECRET}"]}
)");
        Subprocess::Options o = env();
        o.cwd = dir.path().string();
        o.env["TMPDIR"] = dir.path().string();
        proc = std::make_unique<Subprocess>(
            std::vector<std::string>{kClayhookBin, "serve", "--config", "c.yaml"}, o);
        REQUIRE(proc->wait_for_output("msg=ready", 30s));
        const std::string log = proc->err();
        const auto at = log.find(" admin=127.0.0.1:", log.rfind("msg=ready"));
        REQUIRE(at != std::string::npos);
        admin_port = static_cast<uint16_t>(std::stoi(log.substr(at + 17)));
    }
    ~RelativeHost() {
        proc->signal(SIGTERM);
        proc->wait(30s);
    }

    static Subprocess::Options env() {
        Subprocess::Options o;
        o.env["HELP_TEST_TOKEN"] = kToken;
        o.env["HELP_TEST_SECRET"] = "help-test-secret";
        o.unset_env = {"CLAYHOOK_CONFIG"};
        return o;
    }

    // `clayhook reload ARGS` run in `cwd`.
    RunResult reload(std::vector<std::string> args, const std::string& cwd) const {
        // The config's admin port is 0 (picked at start): the address is given.
        args.insert(args.begin(), {kClayhookBin, "reload", "--admin",
                                   "http://127.0.0.1:" + std::to_string(admin_port)});
        Subprocess::Options o = env();
        o.cwd = cwd;
        return run(args, o, 60s);
    }
};

}  // namespace

TEST_CASE(
    "reload names the file the host reloaded, absolute, and warns when it is not the one "
    "given",
    "[cli][reload]") {
    RelativeHost h;
    // The host was given c.yaml; the answer says where that is.
    const std::string host_file = fs::absolute(h.dir.file("c.yaml")).lexically_normal().string();
    auto status =
        http_exchange("GET", "http://127.0.0.1:" + std::to_string(h.admin_port) + "/admin/reload",
                      {{"Authorization", std::string("Bearer ") + kToken}}, "", 30s);
    REQUIRE(status.status == 200);
    CHECK(json::parse(status.body).get_string("file", "") == host_file);

    SECTION("the same file, however it is named: no warning") {
        auto here = h.reload({"--config", "c.yaml"}, h.dir.path().string());
        INFO(here.out << here.err);
        CHECK(here.code == 0);
        CHECK_THAT(here.out,
                   Catch::StartsWith("reloaded " + host_file + ": generation 2 serving (took "));
        CHECK(here.err.empty());
        // From another folder, through `..`, and through a symlink.
        fs::create_directories(h.dir.path() / "sub");
        fs::create_symlink(h.dir.file("c.yaml"), h.dir.file("sub/link.yaml"));
        for (const char* cfg : {"../c.yaml", "link.yaml"}) {
            auto r = h.reload({"--config", cfg}, h.dir.file("sub"));
            INFO(cfg << ": " << r.out << r.err);
            CHECK(r.code == 0);
            CHECK(r.err.empty());
        }
        // The default config, when it is that file.
        fs::create_directories(h.dir.path() / "config");
        fs::create_symlink(h.dir.file("c.yaml"), h.dir.file("config/clayhook.yaml"));
        auto dflt = h.reload({}, h.dir.path().string());
        CHECK(dflt.code == 0);
        CHECK(dflt.err.empty());
    }
    SECTION("another file with the same admin section: reloaded, exit 0, and a warning") {
        fs::copy_file(h.dir.file("c.yaml"), h.dir.file("copy.yaml"));
        auto r = h.reload({"--config", "copy.yaml"}, h.dir.path().string());
        INFO(r.out << r.err);
        CHECK(r.code == 0);
        CHECK_THAT(r.out, Catch::StartsWith("reloaded " + host_file + ": generation 2 serving"));
        CHECK(r.err == "clayhook reload: warning: the host reloaded " + host_file +
                           ", not copy.yaml given here\n");
        // --json: the answer as it is on stdout, the warning on stderr.
        auto j = h.reload({"--config", h.dir.file("copy.yaml"), "--json"}, h.dir.file("."));
        CHECK(j.code == 0);
        auto doc = json::parse(j.out);
        CHECK(doc.get_string("file", "") == host_file);
        CHECK(doc.get_int("generation", 0) == 3);
        CHECK(j.err == "clayhook reload: warning: the host reloaded " + host_file + ", not " +
                           h.dir.file("copy.yaml") + " given here\n");
    }
}
