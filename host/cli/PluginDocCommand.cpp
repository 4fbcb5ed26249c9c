// `clayhook plugin-doc LIBRARY`: what a plugin library says about itself,
// for its author and its docs: name, version, ABI, events, and the config it
// declares as a Markdown table (docs/plugins/*.md carry that table between
// <!-- config-table --> markers; tests/plugins/plugin_docs_test.cpp checks
// they agree). LIBRARY is a path or bundled:NAME. The library is loaded in
// this process: use it on plugins you trust.
#include "cli/Commands.h"

#include "config/ConfigLoader.h"
#include "plugins/ConfigSchema.h"
#include "plugins/PluginLibrary.h"

#include <filesystem>
#include <ostream>

namespace clayhook {

int plugin_doc_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    if (args.size() != 2) {
        err << "usage: clayhook plugin-doc LIBRARY (a path, or bundled:NAME)\n";
        return kExitUsage;
    }
    std::string path = args[1];
    if (path.rfind("bundled:", 0) == 0) {
        const std::string name = path.substr(8);
        auto found = find_bundled_plugin(name, default_bundled_plugin_dirs());
        if (!found) {
            err << "clayhook plugin-doc: no bundled plugin '" << name << "'\n";
            return kExitFailed;
        }
        path = *found;
    }
    const std::string stage = make_stage_dir();
    int rc = kExitOk;
    try {
        auto lib = PluginLibrary::load("plugin-doc", path, stage);
        const auto& d = lib->descriptor();
        out << "# " << lib->name() << " " << lib->version() << " (plugin ABI " << lib->abi().str()
            << ")\n\n";
        if (d.description != nullptr && *d.description) out << d.description << "\n\n";
        out << "Events:";
        for (const auto& p : lib->event_patterns())
            out << " `" << p << "`";
        out << "\n\n";
        if (lib->config_keys().empty())
            out << "Declares no config keys (its config is handed over unchecked).\n";
        else
            out << config_table_markdown(lib->config_keys());
    } catch (const std::exception& e) {
        err << "clayhook plugin-doc: " << e.what() << "\n";
        rc = kExitFailed;
    }
    std::error_code ec;
    std::filesystem::remove_all(stage, ec);
    return rc;
}

}  // namespace clayhook
