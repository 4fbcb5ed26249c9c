// Field mapping shared by the CRM push plugins (header-only, plugin-api only):
// CRM field ← a dotted path in the event, with a default, the first non-empty
// of several paths, and simple transforms.
//
//   mapping:
//     Website:
//       from: [data.company.domain, data.company_domain]   # the first non-empty
//       transform: [trim, lowercase]
//       required: true
//     Name: {from: data.company.name, default: "Unknown"}
//     LinkedIn_URL__c: data.linkedin.url   # shorthand for {from: data.linkedin.url}
//
// Transforms: trim, lowercase, uppercase (on strings; other JSON values are
// passed through unchanged). "Empty" means absent, null, or a string that is
// empty after the transforms.
#pragma once

#include <clayhook/json.hpp>

#include <algorithm>
#include <cctype>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace clayhook_plugins {

namespace json = clayhook::json;

class FieldMap {
  public:
    struct Rule {
        std::string field;
        std::vector<std::string> from;        // tried in order
        std::optional<json::Value> fallback;  // `default:`
        std::vector<std::string> transforms;
        bool required = false;
    };

    // The mapped fields of one event, in config order, and the first
    // required field that came out empty ("" when none).
    struct Applied {
        std::vector<std::pair<std::string, json::Value>> values;
        std::string missing;
        const json::Value* get(std::string_view field) const {
            for (const auto& [f, v] : values)
                if (f == field) return &v;
            return nullptr;
        }
    };

    // `mapping` is the plugin config's object. Throws std::runtime_error
    // naming the key ("config: mapping.Website.transform: unknown transform 'x'").
    static FieldMap parse(const json::Value& mapping, std::string_view where = "mapping") {
        const std::string at = "config: " + std::string(where);
        if (!mapping.is_object() || mapping.size() == 0)
            throw std::runtime_error(at + ": a mapping of CRM fields to event paths is required");
        FieldMap m;
        for (const auto& [field, spec] : mapping.members()) {
            const std::string here = at + "." + field;
            Rule r;
            r.field = field;
            if (spec.is_string()) {
                r.from.push_back(spec.as_string());
            } else if (spec.is_object()) {
                for (const auto& [k, v] : spec.members())
                    if (k != "from" && k != "default" && k != "transform" && k != "required")
                        throw std::runtime_error(here + ": unknown key '" + k +
                                                 "' (from, default, transform, required)");
                r.from = strings(spec.find("from"), here + ".from");
                if (const json::Value* d = spec.find("default")) r.fallback = *d;
                r.transforms = strings(spec.find("transform"), here + ".transform");
                for (const auto& t : r.transforms)
                    if (t != "trim" && t != "lowercase" && t != "uppercase")
                        throw std::runtime_error(here + ".transform: unknown transform '" + t +
                                                 "' (trim, lowercase, uppercase)");
                if (const json::Value* q = spec.find("required")) {
                    if (!q->is_bool()) throw std::runtime_error(here + ".required: true or false");
                    r.required = q->as_bool();
                }
            } else {
                throw std::runtime_error(here +
                                         ": a path, or {from, default, transform, required}");
            }
            if (r.from.empty()) throw std::runtime_error(here + ".from: at least one path");
            for (const auto& p : r.from)
                if (p.empty()) throw std::runtime_error(here + ".from: an empty path");
            m.rules_.push_back(std::move(r));
        }
        return m;
    }

    Applied apply(const json::Value& body) const {
        Applied out;
        for (const auto& r : rules_) {
            std::optional<json::Value> got;
            for (const auto& path : r.from) {
                const json::Value* v = body.at_path(path);
                if (v == nullptr || v->is_null()) continue;
                json::Value t = transform(*v, r.transforms);
                if (t.is_string() && t.as_string().empty()) continue;
                got = std::move(t);
                break;
            }
            if (!got && r.fallback) got = *r.fallback;
            if (!got) {
                if (r.required && out.missing.empty()) out.missing = r.field;
                continue;
            }
            out.values.emplace_back(r.field, std::move(*got));
        }
        return out;
    }

    const std::vector<Rule>& rules() const { return rules_; }

  private:
    static std::vector<std::string> strings(const json::Value* v, const std::string& here) {
        std::vector<std::string> out;
        if (v == nullptr) return out;
        if (v->is_string()) return {v->as_string()};
        if (!v->is_array()) throw std::runtime_error(here + ": a string or a list of strings");
        for (const auto& x : v->items()) {
            if (!x.is_string()) throw std::runtime_error(here + ": a string or a list of strings");
            out.push_back(x.as_string());
        }
        return out;
    }

    static json::Value transform(const json::Value& v, const std::vector<std::string>& ts) {
        if (!v.is_string() || ts.empty()) return v;
        std::string s = v.as_string();
        for (const auto& t : ts) {
            if (t == "trim") {
                auto ws = [](unsigned char c) { return std::isspace(c) != 0; };
                s.erase(s.begin(), std::find_if_not(s.begin(), s.end(), ws));
                s.erase(std::find_if_not(s.rbegin(), s.rend(), ws).base(), s.end());
            } else if (t == "lowercase") {
                for (auto& c : s)
                    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            } else if (t == "uppercase") {
                for (auto& c : s)
                    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            }
        }
        return json::Value(std::move(s));
    }

    std::vector<Rule> rules_;
};

}  // namespace clayhook_plugins
