// Routing (host/routing/Routes): which plugins get a delivery for an event
// type under exact, prefix.* and * patterns, and the ordering key each
// delivery carries, read from the event's real JSON body (as the intake
// reads it: intake::extract at the routes' order paths).
#include "routing/Routes.h"
#include "intake/JsonFields.h"

#include <clayhook/json.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace clayhook;

namespace {

RouteTarget target(const std::string& plugin, const std::vector<std::string>& patterns,
                   const std::string& order_path = "") {
    RouteTarget t;
    t.plugin = plugin;
    for (const auto& p : patterns)
        t.patterns.emplace_back(p);
    t.order_path = order_path;
    return t;
}

// What the intake does with a body: looks up the routes' order paths in it,
// then asks for the deliveries.
void route(const Routes& routes, const std::string& type, const std::string& body,
           std::vector<NewDelivery>& out) {
    intake::FieldPaths paths(routes.order_paths());
    std::vector<intake::Field> fields;
    intake::JsonError error;
    REQUIRE(intake::extract(body, paths, fields, error));
    routes.deliveries_for(type, body, fields, out);
}

// The plugins that get a delivery, in order.
std::vector<std::string> plugins_for(const Routes& routes, const std::string& type,
                                     const std::string& body = "{}") {
    std::vector<NewDelivery> out;
    route(routes, type, body, out);
    std::vector<std::string> names;
    for (const auto& d : out)
        names.emplace_back(d.plugin);
    return names;
}

// The one delivery's ordering key for `body`, routed to a plugin ordered by `path`.
std::string key_for(const std::string& path, const std::string& body) {
    Routes routes({target("ordered", {"*"}, path)});
    std::vector<NewDelivery> out;
    route(routes, "enrichment.completed", body, out);
    REQUIRE(out.size() == 1);
    return out[0].order_key;
}

}  // namespace

TEST_CASE("routes: exact, prefix.* and * patterns pick the plugins, in config order", "[routing]") {
    Routes routes({
        target("exact", {"enrichment.completed"}),
        target("prefix", {"enrichment.*"}),
        target("all", {"*"}),
        target("rows", {"table.row.*", "workflow.completed"}),
    });
    using V = std::vector<std::string>;
    CHECK(plugins_for(routes, "enrichment.completed") == V{"exact", "prefix", "all"});
    CHECK(plugins_for(routes, "enrichment.failed") == V{"prefix", "all"});
    CHECK(plugins_for(routes, "table.row.created") == V{"all", "rows"});
    CHECK(plugins_for(routes, "table.row.updated") == V{"all", "rows"});
    CHECK(plugins_for(routes, "workflow.completed") == V{"all", "rows"});
    CHECK(plugins_for(routes, "table.export.completed") == V{"all"});
    CHECK(plugins_for(routes, "something.new") == V{"all"});
    // "enrichment.*" is the types under "enrichment.", not the prefix itself.
    CHECK(plugins_for(routes, "enrichment") == V{"all"});
}

TEST_CASE("routes: a plugin matched by several of its patterns gets one delivery", "[routing]") {
    Routes routes({target("p", {"enrichment.completed", "enrichment.*", "*"})});
    CHECK(plugins_for(routes, "enrichment.completed") == std::vector<std::string>{"p"});
}

TEST_CASE("routes: no subscriber, no delivery, what was there stays", "[routing]") {
    Routes none({target("rows", {"table.row.*"})});
    CHECK(plugins_for(none, "enrichment.completed").empty());
    CHECK(plugins_for(Routes(std::vector<RouteTarget>{}), "enrichment.completed").empty());

    std::vector<NewDelivery> out(1);
    out[0].plugin = "earlier";
    route(none, "table.row.created", "{}", out);
    REQUIRE(out.size() == 2);
    CHECK(out[0].plugin == "earlier");
    CHECK(out[1].plugin == "rows");
}

TEST_CASE("routes: the ordering key is read from the body at the plugin's path", "[routing]") {
    const std::string body =
        R"({"event":"enrichment.completed","table_id":"t_abc123","row_id":"row_00000042",)"
        R"("timestamp":"2026-11-26T12:00:42.042Z","data":{"email":"person42@example.com",)"
        R"("company":{"domain":"acme.com","employee_count":1200,"tags":["a","b"],)"
        R"("hq":{"city":"Paris"},"public":true,"parent":null}}})";
    SECTION("a string, top level or nested: as is") {
        CHECK(key_for("row_id", body) == "row_00000042");
        CHECK(key_for("data.company.domain", body) == "acme.com");
    }
    SECTION("anything else: its JSON text") {
        CHECK(key_for("data.company.employee_count", body) == "1200");
        CHECK(key_for("data.company.tags", body) == R"(["a","b"])");
        CHECK(key_for("data.company.hq", body) == R"({"city":"Paris"})");
        CHECK(key_for("data.company.public", body) == "true");
    }
    SECTION("missing or null: no key, so the event is not held back by others") {
        CHECK(key_for("data.company.name", body) == "");
        CHECK(key_for("data.nothing.here", body) == "");
        CHECK(key_for("row_id.deeper", body) == "");
        CHECK(key_for("data.company.parent", body) == "");
    }
}

TEST_CASE("routes: only an ordered plugin's deliveries carry a key", "[routing]") {
    Routes routes({target("plain", {"*"}), target("ordered", {"*"}, "row_id")});
    std::vector<NewDelivery> out;
    route(routes, "table.row.created", R"({"event":"table.row.created","row_id":"row_7"})", out);
    REQUIRE(out.size() == 2);
    CHECK(out[0].plugin == "plain");
    CHECK(out[0].order_key == "");
    CHECK(out[1].plugin == "ordered");
    CHECK(out[1].order_key == "row_7");
}

TEST_CASE("routes: each ordering path is looked up once, whichever plugins share it", "[routing]") {
    Routes routes({target("a", {"*"}, "row_id"), target("b", {"*"}), target("c", {"*"}, "data.id"),
                   target("d", {"*"}, "row_id")});
    CHECK(routes.order_paths() == std::vector<std::string>{"row_id", "data.id"});
    std::vector<NewDelivery> out;
    route(routes, "table.row.created", R"({"row_id":"r1","data":{"id":[1,2.50]}})", out);
    REQUIRE(out.size() == 4);
    CHECK(out[0].order_key == "r1");
    CHECK(out[1].order_key == "");
    CHECK(out[2].order_key == "[1,2.5]");
    CHECK(out[3].order_key == "r1");
}

TEST_CASE("routes: the ordering key is the SDK's view of the body", "[routing]") {
    // Escapes decoded, JSON text as json::dump writes it, the last of
    // duplicate keys: what an ordered plugin's key was before the intake had
    // its own reader.
    const std::string body =
        R"({"row_id":"first","row_id":"r\u00e9\/\n","n":1.0E2,"o":{"b":1,"a":[],"b":"\u0041"},)"
        R"("big":12345678901234567890,"neg":-0.0})";
    const json::Value doc = json::parse(body);
    for (const std::string path : {"row_id", "n", "o", "big", "neg"}) {
        INFO(path);
        const json::Value* v = doc.at_path(path);
        REQUIRE(v != nullptr);
        CHECK(key_for(path, body) == (v->is_string() ? v->as_string() : json::dump(*v)));
    }
    CHECK(key_for("row_id", body) == "r\xc3\xa9/\n");
    CHECK(key_for("o", body) == R"({"b":"A","a":[]})");
    CHECK(key_for("n", body) == "100");
}
