// Each bundled plugin declares its config (ABI 1.1), and its page in
// docs/plugins/ carries exactly the table `clayhook plugin-doc` prints from
// that declaration, between the config-table markers: the page and the code
// cannot disagree (Fluent Bit's config maps, as a test).
#include "plugins/ConfigSchema.h"
#include "plugins/PluginLibrary.h"
#include "support/TempDir.h"
#include "support/TestPaths.h"

#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

using namespace clayhook;

namespace {

std::string read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

TEST_CASE("bundled plugins declare their config, and their docs carry the generated table",
          "[plugin-docs]") {
    test::TempDir stage;
    for (const char* name : {"jsonl-sink", "salesforce-push", "hubspot-push", "retry-scheduler",
                             "export-downloader"}) {
        INFO(name);
        auto lib = PluginLibrary::load(
            name, std::string(test::kBundledPluginDir) + "/" + name + ".so", stage.path().string());
        REQUIRE_FALSE(lib->config_keys().empty());
        const std::string page =
            read(std::string(test::kSourceDir) + "/docs/plugins/" + name + ".md");
        const std::string begin =
            "<!-- config-table: begin (clayhook plugin-doc bundled:" + std::string(name) +
            ") -->\n";
        const std::string end = "<!-- config-table: end -->";
        auto b = page.find(begin);
        auto e = page.find(end);
        INFO("docs/plugins/" << name << ".md needs the table between\n"
                             << begin << end
                             << "\n(regenerate it with: clayhook plugin-doc bundled:" << name
                             << ")");
        REQUIRE(b != std::string::npos);
        REQUIRE(e != std::string::npos);
        const std::string in_docs = page.substr(b + begin.size(), e - b - begin.size());
        const std::string generated = config_table_markdown(lib->config_keys());
        CHECK(in_docs == generated);
    }
}
