// The CRM plugins' shared field mapping (plugins/common/field_map.hpp).
#include "field_map.hpp"

#include <catch2/catch.hpp>

using clayhook_plugins::FieldMap;
namespace json = clayhook::json;

namespace {
const char* kEvent = R"({"event":"enrichment.completed","row_id":"row_42",
  "data":{"email":"  Person42@Example.COM ","company":{"name":"Company 42","domain":"",
  "employee_count":1200},"company_domain":"Company42.com","linkedin":{"url":null}}})";
}

TEST_CASE("field map: paths, first non-empty, defaults, transforms", "[field-map]") {
    auto m = FieldMap::parse(json::parse(R"({
      "email": {"from": "data.email", "transform": ["trim", "lowercase"], "required": true},
      "domain": {"from": ["data.company.domain", "data.company_domain"], "transform": "lowercase"},
      "name": "data.company.name",
      "employees": "data.company.employee_count",
      "linkedin": {"from": "data.linkedin.url", "default": "none"},
      "absent": "data.nothing.here"
    })"));
    auto a = m.apply(json::parse(kEvent));
    CHECK(a.missing.empty());
    REQUIRE(a.get("email"));
    CHECK(a.get("email")->as_string() == "person42@example.com");
    // The first path is an empty string: the second one is taken.
    CHECK(a.get("domain")->as_string() == "company42.com");
    CHECK(a.get("name")->as_string() == "Company 42");
    // Non-strings pass through unchanged.
    CHECK(a.get("employees")->as_int64() == 1200);
    // null counts as empty: the default.
    CHECK(a.get("linkedin")->as_string() == "none");
    CHECK(a.get("absent") == nullptr);
    REQUIRE(a.values.size() == 5);
    CHECK(a.values[0].first == "email");  // config order
}

TEST_CASE("field map: a required field that comes out empty is named", "[field-map]") {
    auto m = FieldMap::parse(json::parse(R"({
      "name": "data.company.name",
      "Website": {"from": ["data.company.domain", "data.website"], "required": true},
      "Phone": {"from": "data.phone", "required": true}
    })"));
    auto a = m.apply(json::parse(kEvent));
    CHECK(a.missing == "Website");  // the first one missing, in config order
    auto b = m.apply(json::parse(R"({"data":{"company":{"domain":"x.com"},"phone":" "}})"));
    CHECK(b.missing.empty());  // " " is not empty without trim
    auto c = FieldMap::parse(json::parse(R"({"Phone":{"from":"data.phone","transform":"trim",
        "required":true}})"))
                 .apply(json::parse(R"({"data":{"phone":"   "}})"));
    CHECK(c.missing == "Phone");  // empty after trim
}

TEST_CASE("field map: config mistakes name the key", "[field-map]") {
    auto refused = [](const char* text, const char* why) {
        try {
            FieldMap::parse(json::parse(text), "contact.mapping");
            FAIL("parsed: " << text);
        } catch (const std::runtime_error& e) {
            CHECK_THAT(std::string(e.what()), Catch::Contains(why));
        }
    };
    refused("{}", "config: contact.mapping: a mapping of CRM fields to event paths is required");
    refused(R"({"a":{"from":"x","transform":"reverse"}})",
            "config: contact.mapping.a.transform: unknown transform 'reverse'");
    refused(R"({"a":{"form":"x"}})", "config: contact.mapping.a: unknown key 'form'");
    refused(R"({"a":{"default":"x"}})", "config: contact.mapping.a.from: at least one path");
    refused(R"({"a":42})", "config: contact.mapping.a: a path, or {from, default, transform");
    refused(R"({"a":{"from":"x","required":"yes"}})", "contact.mapping.a.required: true or false");
}
