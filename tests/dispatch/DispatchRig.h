#pragma once

// A real store (SQLite file in a temp folder), a real plugin (the probe
// fixture, loaded with Boost.DLL) and the dispatcher between them, in this
// process, so the dispatcher tests can restart it on the same store.
#include "app/Generation.h"
#include "config/Config.h"
#include "dispatch/Dispatcher.h"
#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "plugins/PluginInstance.h"
#include "plugins/PluginLibrary.h"
#include "plugins/StoreServices.h"
#include "store/SqliteStore.h"
#include "support/TempDir.h"
#include "support/TestPaths.h"
#include "support/Wait.h"

#include <clayhook/json.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace clayhook::test {

inline int64_t unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

struct DispatchRig {
    TempDir dir;
    std::string db = dir.file("var/clayhook.db");
    std::string probe_log = dir.file("probe.jsonl");
    std::string stage = dir.file("stage");
    std::ostringstream log_out;
    Logger log{log_out, Level::debug};
    Metrics metrics;
    DispatchConfig dispatch;
    PluginConfig plugin;
    bool batch = false;
    bool ordered = false;
    std::string library;  // another plugin than the probe (an absolute .so path)
    uint32_t concurrency = 2;

    std::unique_ptr<SqliteStore> store;
    std::unique_ptr<StoreServices> services;
    std::unique_ptr<GenerationBuilder> builder;
    std::shared_ptr<const Generation> gen;
    std::shared_ptr<PluginInstance> inst;
    std::unique_ptr<Dispatcher> dispatcher;
    int counter = 0;

    DispatchRig() {
        std::filesystem::create_directories(stage);
        plugin.name = "p";
        plugin.config_json = "{\"log\":" + json::quote(probe_log) + "}";
        dispatch.batch_linger = std::chrono::milliseconds(0);
        dispatch.retry.backoff_base = std::chrono::milliseconds(1);
        dispatch.retry.backoff_cap = std::chrono::milliseconds(5);
    }
    ~DispatchRig() { down(); }

    void up() {
        StoreConfig sc;
        sc.path = db;
        store = std::make_unique<SqliteStore>(sc, 256);
        services = std::make_unique<StoreServices>(*store, log);
        // The same builder as serve and reload: a config of one plugin.
        Config config;
        config.dispatch = dispatch;
        PluginConfig pc = plugin;
        pc.library = pc.library_path =
            !library.empty()
                ? library
                : std::string(kFixturePluginDir) + (batch ? "/probe_batch.so" : "/probe.so");
        pc.concurrency = static_cast<int>(concurrency);
        pc.ordered = ordered;
        pc.retry = dispatch.retry;
        config.plugins = {pc};
        builder = std::make_unique<GenerationBuilder>(stage, services.get(), log, metrics);
        gen = builder->build(config, 1);
        // A refused plugin throws, as PluginInstance::create does.
        if (!gen->plugins->refused.empty()) {
            std::string why = gen->plugins->refused.front().reason;
            gen.reset();
            builder.reset();
            services.reset();
            store.reset();
            throw PluginError(why);
        }
        inst = gen->plugins->instances.at(0);
        dispatcher = std::make_unique<Dispatcher>(*store, dispatch, gen->targets, log, metrics);
        services->attach(dispatcher.get());
        dispatcher->start();
    }

    void down() {
        if (!dispatcher) return;
        REQUIRE(dispatcher->stop(std::chrono::seconds(60)));
        services->detach();
        dispatcher.reset();
        store->flush();
        inst.reset();
        gen.reset();  // the plugin, unloaded
        builder.reset();
        services.reset();
        store.reset();
    }

    // Stores one event for plugin "p" the way the intake does; returns its id.
    std::string post(const std::string& probe = "{}", std::string row = "",
                     int64_t received_at_ms = 0) {
        if (row.empty()) row = "row_" + std::to_string(++counter);
        std::string body = R"({"event":"enrichment.completed","row_id":)" + json::quote(row) +
                           R"(,"probe":)" + probe + "}";
        std::string key = "k" + std::to_string(++counter) + "_" + row;
        NewDelivery d;
        d.plugin = plugin.name;
        if (ordered) d.order_key = row;
        NewEvent e{"clay",
                   "enrichment.completed",
                   key,
                   body,
                   received_at_ms ? received_at_ms : unix_ms(),
                   std::span(&d, 1)};
        InsertResult r = store->insert(e);
        REQUIRE(r.status == InsertStatus::stored);
        store->flush();  // indexed from the journal: its delivery is in the tables
        return r.id;
    }

    // Stores one event with this type and body for plugin "p"; returns its id.
    std::string post_body(const std::string& type, const std::string& body) {
        std::string key = "k" + std::to_string(++counter);
        NewDelivery d;
        d.plugin = plugin.name;
        NewEvent e{"clay", type, key, body, unix_ms(), std::span(&d, 1)};
        InsertResult r = store->insert(e);
        REQUIRE(r.status == InsertStatus::stored);
        store->flush();
        return r.id;
    }

    // What the probe wrote: one object per handed-over event, in order.
    std::vector<json::Value> lines() const {
        std::vector<json::Value> out;
        std::ifstream in(probe_log);
        std::string line;
        while (std::getline(in, line))
            if (!line.empty() && line.back() == '}') out.push_back(json::parse(line));
        return out;
    }
    std::vector<json::Value> lines_for(const std::string& id) const {
        std::vector<json::Value> out;
        for (auto& l : lines())
            if (l.get_string("id", "") == id) out.push_back(l);
        return out;
    }

    DeliveryInfo delivery(const std::string& event_id) {
        auto v = store->event_deliveries(event_id);
        REQUIRE(v.size() >= 1);
        return v.front();
    }
    bool state_is(const std::string& event_id, DeliveryState s) {
        auto v = store->event_deliveries(event_id);
        return !v.empty() && v.front().state == s;
    }
    double metric(const std::string& name, const std::string& extra = "") {
        return metrics.value(name, "plugin=\"p\"" + extra);
    }
};

}  // namespace clayhook::test
