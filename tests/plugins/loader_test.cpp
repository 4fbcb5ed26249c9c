// The real loader (Boost.DLL, staged copies) against real .so fixtures, one
// per failure mode: each is refused with a message naming the plugin, its
// path and the reason, and loading goes on.
#include "config/Config.h"
#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "plugins/PluginInstance.h"
#include "plugins/PluginLibrary.h"
#include "plugins/PluginSet.h"
#include "support/TempDir.h"
#include "support/TestPaths.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <sstream>

using namespace clayhook;
using clayhook::test::TempDir;

namespace {

std::string fixture(const std::string& name) {
    return std::string(test::kFixturePluginDir) + "/" + name + ".so";
}

struct Env {
    TempDir stage;
    std::ostringstream log_out;
    Logger log{log_out, Level::debug};
    Metrics metrics;
};

std::string refusal(const std::string& name) {
    Env env;
    try {
        auto lib = PluginLibrary::load("p1", fixture(name), env.stage.path().string());
        PluginConfig pc;
        pc.name = "p1";
        auto inst = PluginInstance::create(lib, pc, env.log, env.metrics);
    } catch (const PluginError& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("a valid C plugin loads and its descriptor is read", "[loader]") {
    Env env;
    auto lib = PluginLibrary::load("p1", fixture("good_c"), env.stage.path().string());
    CHECK(lib->name() == "fixture");
    CHECK(lib->version() == "0.0.1");
    CHECK(lib->abi().str() == "1.1");
    CHECK(lib->event_patterns() == std::vector<std::string>{"enrichment.*"});
    // The staged copy is unlinked once mapped: nothing accumulates.
    CHECK(std::filesystem::is_empty(env.stage.path()));
}

TEST_CASE("a missing file is refused naming plugin and path", "[loader]") {
    auto why = refusal("does_not_exist");
    CHECK_THAT(why, Catch::Contains("plugin 'p1'"));
    CHECK_THAT(why, Catch::Contains("does_not_exist.so"));
    CHECK_THAT(why, Catch::Contains("does not exist"));
}

TEST_CASE("a file that is not a shared library is refused", "[loader]") {
    Env env;
    TempDir dir;
    auto path = dir.write("junk.so", "this is not an ELF file\n");
    try {
        PluginLibrary::load("junk", path, env.stage.path().string());
        FAIL("loaded a text file");
    } catch (const PluginError& e) {
        std::string why = e.what();
        CHECK_THAT(why, Catch::Contains("plugin 'junk'"));
        CHECK_THAT(why, Catch::Contains(path));
        CHECK_THAT(why, Catch::Contains("cannot be loaded"));
    }
}

TEST_CASE("a library without the entry symbol is refused", "[loader]") {
    auto why = refusal("no_entry");
    CHECK_THAT(why, Catch::Contains("no_entry.so"));
    CHECK_THAT(why, Catch::Contains("does not export clayhook_plugin_entry"));
}

TEST_CASE("an entry point returning no descriptor is refused", "[loader]") {
    CHECK_THAT(refusal("null_descriptor"), Catch::Contains("returned no descriptor"));
}

TEST_CASE("an ABI major mismatch is refused naming both versions", "[loader][abi]") {
    auto why = refusal("abi_major");
    CHECK_THAT(why, Catch::Contains("abi_major.so"));
    CHECK_THAT(why, Catch::Contains("plugin ABI 2.0"));
    CHECK_THAT(why, Catch::Contains("host speaks ABI 1.1"));
    CHECK_THAT(why, Catch::Contains("major versions must be equal"));
}

TEST_CASE("a plugin needing a newer ABI minor is refused naming both versions", "[loader][abi]") {
    auto why = refusal("abi_minor");
    CHECK_THAT(why, Catch::Contains("plugin ABI 1.99"));
    CHECK_THAT(why, Catch::Contains("host speaks ABI 1.1"));
    CHECK_THAT(why, Catch::Contains("needs a newer host"));
}

TEST_CASE("an unresolved symbol fails at load time with the symbol named", "[loader]") {
    auto why = refusal("unresolved_symbol");
    CHECK_THAT(why, Catch::Contains("cannot be loaded"));
    CHECK_THAT(why, Catch::Contains("clayhook_fixture_no_such_function"));
    // The operator sees the path they configured, not the staged copy's.
    CHECK_THAT(why, Catch::Contains(fixture("unresolved_symbol")));
}

TEST_CASE("malformed descriptors are refused with the reason", "[loader]") {
    CHECK_THAT(refusal("no_patterns"), Catch::Contains("declares no event patterns"));
    CHECK_THAT(refusal("bad_pattern"), Catch::Contains("enrichment.*.done"));
    CHECK_THAT(refusal("bad_name"), Catch::Contains("name is missing or not of"));
    CHECK_THAT(refusal("batch_without_handler"),
               Catch::Contains("max_batch_size 50 but no handle_batch"));
}

TEST_CASE("a create() that fails is refused with the plugin's own message", "[loader]") {
    auto why = refusal("create_fails");
    CHECK_THAT(why, Catch::Contains("plugin 'p1'"));
    CHECK_THAT(why, Catch::Contains("create() failed"));
    CHECK_THAT(why, Catch::Contains("api_key is missing from the plugin config"));
}

TEST_CASE("a constructor that throws is refused with its message", "[loader][sdk]") {
    Env env;
    auto lib = PluginLibrary::load("p1", fixture("sdk_plugin"), env.stage.path().string());
    PluginConfig pc;
    pc.name = "p1";
    pc.config_json = R"({"throw_in_create":"cannot reach the CRM"})";
    try {
        PluginInstance::create(lib, pc, env.log, env.metrics);
        FAIL("created");
    } catch (const PluginError& e) {
        CHECK_THAT(std::string(e.what()), Catch::Contains("cannot reach the CRM"));
        CHECK_THAT(std::string(e.what()), Catch::Contains("sdk-fixture 1.0.0"));
    }
    CHECK_THAT(refusal("sdk_create_throws"), Catch::Contains("unknown exception while creating"));
}

TEST_CASE("plugin config that is not valid JSON is refused by the SDK", "[loader][sdk]") {
    Env env;
    auto lib = PluginLibrary::load("p1", fixture("sdk_plugin"), env.stage.path().string());
    PluginConfig pc;
    pc.name = "p1";
    pc.config_json = "{not json";
    CHECK_THROWS_AS(PluginInstance::create(lib, pc, env.log, env.metrics), PluginError);
}

TEST_CASE("one broken plugin is refused and the others load", "[loader]") {
    Env env;
    Config c;
    auto add = [&](const std::string& name, const std::string& file, bool enabled = true) {
        PluginConfig pc;
        pc.name = name;
        pc.library = file;
        pc.library_path = fixture(file);
        pc.enabled = enabled;
        c.plugins.push_back(pc);
    };
    add("first", "good_c");
    add("broken", "abi_major");
    add("failing", "create_fails");
    add("off", "no_entry", false);
    add("second", "sdk_plugin");
    auto set = PluginSet::load(c, env.stage.path().string(), env.log, env.metrics);
    REQUIRE(set.instances.size() == 2);
    CHECK(set.instances[0]->name() == "first");
    CHECK(set.instances[1]->name() == "second");
    REQUIRE(set.refused.size() == 2);
    CHECK(set.refused[0].name == "broken");
    CHECK(set.refused[1].name == "failing");
    CHECK(set.disabled == std::vector<std::string>{"off"});
    CHECK_THAT(env.log_out.str(), Catch::Contains("level=error"));
    // Routing over what did load.
    auto r = set.route("enrichment.completed");
    REQUIRE(r.size() == 2);
    CHECK(set.route("table.row.created").size() == 1);
    CHECK(set.route("workflow.completed").empty());
}

TEST_CASE("a rebuilt library at the same path really loads again", "[loader][reload]") {
    Env env;
    TempDir dir;
    std::string path = dir.file("plugin.so");
    std::filesystem::copy_file(fixture("sdk_plugin"), path);
    auto v1 = PluginLibrary::load("p", path, env.stage.path().string());
    REQUIRE(v1->version() == "1.0.0");
    // Replace the file as a build would (new inode), keeping v1 loaded.
    std::filesystem::remove(path);
    std::filesystem::copy_file(fixture("sdk_plugin_v2"), path);
    auto v2 = PluginLibrary::load("p", path, env.stage.path().string());
    CHECK(v2->version() == "2.0.0");
    CHECK(v1->version() == "1.0.0");  // both live side by side
}

TEST_CASE("results, reasons and exceptions cross the boundary as values", "[loader][sdk]") {
    Env env;
    auto lib = PluginLibrary::load("p", fixture("sdk_plugin"), env.stage.path().string());
    PluginConfig pc;
    pc.name = "p";
    pc.config_json = R"({"log":"hello from create"})";
    auto inst = PluginInstance::create(lib, pc, env.log, env.metrics);
    CHECK_THAT(env.log_out.str(), Catch::Contains("hello from create"));
    CHECK_THAT(env.log_out.str(), Catch::Contains("plugin=p"));
    CHECK(inst->max_concurrency() == 2);

    auto call = [&](const std::string& body) {
        EventView e;
        e.id = "ev_1";
        e.type = "enrichment.completed";
        e.body = body;
        return inst->handle(e);
    };
    CHECK(call(R"({"answer":"done"})").status == CLAYHOOK_DONE);
    auto r = call(R"({"answer":"retry","after_ms":1500,"reason":"crm busy"})");
    CHECK(r.status == CLAYHOOK_RETRY);
    CHECK(r.retry_after.count() == 1500);
    CHECK(r.reason == "crm busy");
    auto f = call(R"({"answer":"fail","reason":"no email"})");
    CHECK(f.status == CLAYHOOK_FAIL);
    CHECK(f.reason == "no email");
    auto t = call(R"({"answer":"throw"})");
    CHECK(t.status == CLAYHOOK_RETRY);
    CHECK_THAT(t.reason, Catch::Contains("thrown on purpose for ev_1"));
    auto ti = call(R"({"answer":"throw-int"})");
    CHECK(ti.status == CLAYHOOK_RETRY);
    CHECK_THAT(ti.reason, Catch::Contains("unknown exception"));
    // A body that is not JSON throws inside the handler: a retry, not a crash.
    CHECK(call("not json").status == CLAYHOOK_RETRY);
    // Reserved services answer "not supported" until the store provides them.
    auto kv = call(R"({"answer":"kv"})");
    CHECK(kv.status == CLAYHOOK_FAIL);
    CHECK_THAT(kv.reason, Catch::Contains("not supported by this host"));
    // Metrics reach the registry with the instance label, which the plugin
    // cannot override.
    auto spoof = call(R"({"answer":"spoof"})");
    CHECK(spoof.status == CLAYHOOK_FAIL);
    CHECK_THAT(spoof.reason, Catch::Contains("invalid arguments"));
    CHECK(env.metrics.value("clayhook_plugin_handled_total", R"(answer="done",plugin="p")") == 1);
    CHECK(env.metrics.value("clayhook_plugin_created_total", R"(plugin="p")") == 1);
}

TEST_CASE("the config's events and concurrency override the plugin's own", "[loader]") {
    Env env;
    auto lib = PluginLibrary::load("p", fixture("sdk_plugin"), env.stage.path().string());
    PluginConfig pc;
    pc.name = "p";
    pc.events = std::vector<std::string>{"workflow.completed"};
    pc.concurrency = 1;
    auto inst = PluginInstance::create(lib, pc, env.log, env.metrics);
    CHECK(inst->subscribes("workflow.completed"));
    CHECK_FALSE(inst->subscribes("enrichment.completed"));
    CHECK(inst->max_concurrency() == 1);
    // Raising it above the plugin's own limit is not allowed: the plugin's stays.
    pc.concurrency = 50;
    auto inst2 = PluginInstance::create(lib, pc, env.log, env.metrics);
    CHECK(inst2->max_concurrency() == 2);
}

TEST_CASE("batches are handed over whole and answered per item", "[loader][sdk]") {
    Env env;
    auto lib = PluginLibrary::load("b", fixture("sdk_batch"), env.stage.path().string());
    PluginConfig pc;
    pc.name = "b";
    auto inst = PluginInstance::create(lib, pc, env.log, env.metrics);
    REQUIRE(inst->max_batch_size() == 10);
    std::vector<std::string> bodies;
    for (int i = 0; i < 25; ++i)
        bodies.push_back(i % 7 == 3 ? R"({"answer":"fail"})" : "{}");
    std::vector<EventView> events;
    for (const auto& b : bodies) {
        EventView e;
        e.body = b;
        events.push_back(e);
    }
    auto out = inst->handle_batch(events);
    REQUIRE(out.size() == 25);
    for (size_t i = 0; i < out.size(); ++i) {
        INFO("item " << i);
        CHECK(out[i].status == (i % 7 == 3 ? CLAYHOOK_FAIL : CLAYHOOK_DONE));
    }
    CHECK(out[3].reason == "item 3");   // index within its batch of 10
    CHECK(out[10].reason == "item 0");  // 10 is 3 mod 7 and first of the second batch
}
