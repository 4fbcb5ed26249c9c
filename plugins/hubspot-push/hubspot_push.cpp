// hubspot-push: pushes enriched Clay rows to HubSpot as contacts and
// companies. Built against plugin-api/ only, like any third party's.
//
// Each event's body goes through a field mapping per object type
// (plugins/common/field_map.hpp); contacts are upserted by `email`,
// companies by `domain` (HubSpot's batch upsert, idProperty), so a delivery
// handed over again never makes a second record. With `associate: true` the
// contact is then associated with its company (HubSpot's v4 default
// association). A batch of events costs one upsert call per object type (and
// one association call). What each HubSpot answer becomes (done, retry,
// fail) is in docs/plugins/hubspot-push.md.
//
// HTTP goes through plugins/common/http_kit.hpp: https:// (http:// only to a
// loopback address), ca_file added to the system's CAs, an answer of at most
// 1 MiB, Retry-After as seconds or an HTTP-date. The config is declared
// (HubspotPush::config, ABI 1.1): the host checks it (unknown keys among
// them), takes the token only as a reference and hands timeout_ms (a
// duration_ms: a bare number is ms) over as integer ms; a config handed to
// create() directly may still write it as a "30s"-style string.
#include <clayhook/plugin.hpp>

#include "field_map.hpp"
#include "http_kit.hpp"
#include "units.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace json = clayhook::json;
namespace http = clayhook_plugins::http;
namespace units = clayhook_plugins::units;
using clayhook::Result;
using clayhook_plugins::FieldMap;

namespace {

constexpr size_t kMaxInputs = 100;  // HubSpot's limit per batch call

std::string lower(std::string s) {
    for (auto& c : s)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// HubSpot property values are strings on the wire.
std::string property_text(const json::Value& v) {
    if (v.is_string()) return v.as_string();
    if (v.is_bool()) return v.as_bool() ? "true" : "false";
    return json::dump(v);
}

// What HubSpot answered (status 0: no usable answer at all).
struct Answer {
    int status = 0;
    std::string body;
    std::string error;                                // why, when status is 0
    bool retryable = true;                            // when status is 0: the kit's classification
    std::optional<std::chrono::seconds> retry_after;  // Retry-After, read by the kit
    std::string interval_ms;                          // X-HubSpot-RateLimit-Interval-Milliseconds
};

// HubSpot's error text from a body: "CATEGORY: message", or the body itself.
std::string hubspot_message(const std::string& body) {
    try {
        json::Value v = json::parse(body);
        std::string msg = v.get_string("message", "");
        std::string cat = v.get_string("category", v.get_string("errorType", ""));
        if (!msg.empty()) return cat.empty() ? msg : cat + ": " + msg;
    } catch (const std::exception&) {
    }
    std::string b = body.substr(0, 300);
    return b.empty() ? "(no body)" : b;
}

// One object type's settings.
struct ObjectSpec {
    std::string type;         // "contacts" / "companies"
    std::string id_property;  // "email" / "domain"
    FieldMap map;
};

// One event's record of one object type.
struct Record {
    bool present = false;  // the event yields a record of this type
    std::string id;        // the idProperty's value
    json::Value properties = json::Value::object();
};

// What became of one upsert input (shared by the events with the same id).
struct Outcome {
    enum Kind { pending, done, retry, fail } kind = pending;
    std::string reason;
    std::chrono::milliseconds wait{0};
    std::string object_id;  // HubSpot's id, when done
};

}  // namespace

class HubspotPush {
  public:
    static constexpr const char* name = "hubspot-push";
    static constexpr const char* version = "1.0.0";
    static constexpr const char* description =
        "upserts enriched rows into HubSpot as contacts and companies (batch API)";
    static constexpr const char* events[] = {"enrichment.completed"};
    static constexpr uint32_t max_batch_size = 100;

    // The config it takes (ABI 1.1): the host checks an entry's config against
    // this before the constructor runs (the token only as a reference), fills
    // in the defaults and hands timeout_ms over as integer milliseconds (a
    // duration_ms: a bare number was milliseconds and stays so). contact
    // and company are mappings the host does not look into: checked here,
    // below.
    static constexpr clayhook::ConfigKey config[] = {
        clayhook::config::secret("token",
                                 "A HubSpot private app token, sent as a Bearer token: "
                                 "${HUBSPOT_TOKEN} or file:PATH."),
        clayhook::config::optional(clayhook::ConfigType::string, "base_url",
                                   "https://api.hubapi.com",
                                   "HubSpot's API base; https://, or http:// to a loopback "
                                   "address only."),
        clayhook::config::optional(clayhook::ConfigType::duration_ms, "timeout_ms", "10s",
                                   "Connect, send and read timeout per call, 1ms to 10m."),
        clayhook::config::optional(clayhook::ConfigType::string, "ca_file", nullptr,
                                   "A PEM file of CA certificates added to the system's CAs."),
        clayhook::config::optional(clayhook::ConfigType::boolean, "batch", "true",
                                   "false: one API call per event (for comparison and "
                                   "debugging)."),
        clayhook::config::optional(clayhook::ConfigType::boolean, "associate", "false",
                                   "Associate each event's contact with its company; needs both "
                                   "contact and company."),
        clayhook::config::optional(clayhook::ConfigType::object, "contact", nullptr,
                                   "{mapping: …}: the contact's properties; it must map email."),
        clayhook::config::optional(clayhook::ConfigType::object, "company", nullptr,
                                   "{mapping: …}: the company's properties; it must map domain."),
    };

    HubspotPush(clayhook::Host& host, const json::Value& cfg) : host_(host) {
        if (!cfg.is_object()) throw std::runtime_error("config: a mapping is required");
        // Unknown keys the host has refused already, against `config` above.
        const json::Value* token = cfg.find("token");
        if (token == nullptr || !token->is_string() || token->as_string().empty())
            throw std::runtime_error(
                "config: 'token' is required (a HubSpot private app token, written as "
                "${HUBSPOT_TOKEN} or file:PATH)");
        token_ = token->as_string();
        contact_ = object_spec(cfg, "contact", "contacts", "email");
        company_ = object_spec(cfg, "company", "companies", "domain");
        if (!contact_ && !company_)
            throw std::runtime_error(
                "config: 'contact' or 'company' (or both) is required, each with a 'mapping'");
        associate_ = flag(cfg, "associate", false);
        batch_ = flag(cfg, "batch", true);
        if (associate_ && (!contact_ || !company_))
            throw std::runtime_error(
                "config: 'associate' needs both 'contact' and 'company' to be configured");
        const std::chrono::milliseconds timeout = units::duration_ms_setting(
            cfg, "timeout_ms", std::chrono::milliseconds(10'000), std::chrono::milliseconds(1),
            std::chrono::milliseconds(600'000));
        std::string base = "https://api.hubapi.com";
        if (const json::Value* b = cfg.find("base_url")) {
            if (!b->is_string()) throw std::runtime_error("config: 'base_url' must be a URL");
            base = b->as_string();
        }
        try {
            endpoint_ = http::Endpoint::parse(base, http::AllowHttp::loopback);
        } catch (const http::UrlError& e) {
            throw std::runtime_error(std::string("config: 'base_url' ") + e.what());
        }
        std::string ca;
        if (const json::Value* c = cfg.find("ca_file")) {
            if (!c->is_string()) throw std::runtime_error("config: 'ca_file' must be a path");
            ca = c->as_string();
        }
        // Certificates and host names are always verified; ca_file (PEM) is
        // added to the system's CAs (a private CA, the tests').
        http::ClientOptions o;
        o.connect_timeout = timeout;
        o.read_timeout = timeout;
        try {
            client_ = std::make_unique<http::Client>(ca, o);
        } catch (const std::invalid_argument& e) {
            throw std::runtime_error(std::string("config: 'ca_file': ") + e.what());
        }
        std::string what;
        if (contact_) what = "contacts (by " + contact_->id_property + ")";
        if (company_)
            what += (what.empty() ? "" : " and ") + std::string("companies (by ") +
                    company_->id_property + ")";
        host_.info("upserting " + what + " into " + endpoint_.url() +
                   (associate_ ? ", associating each contact with its company" : "") +
                   (batch_ ? "; batch calls of up to 100" : "; one call per record"));
    }

    Result handle(const clayhook::Event& e) {
        Result r;
        handle_batch(std::span<const clayhook::Event>(&e, 1), std::span<Result>(&r, 1));
        return r;
    }

    void handle_batch(std::span<const clayhook::Event> batch, std::span<Result> results) {
        if (!batch_ && batch.size() > 1) {
            for (size_t i = 0; i < batch.size(); ++i)
                push(batch.subspan(i, 1), results.subspan(i, 1));
            return;
        }
        push(batch, results);
    }

  private:
    // ---- config ---------------------------------------------------------

    static bool flag(const json::Value& cfg, const char* key, bool fallback) {
        const json::Value* v = cfg.find(key);
        if (v == nullptr) return fallback;
        if (!v->is_bool())
            throw std::runtime_error("config: '" + std::string(key) + "' must be true or false");
        return v->as_bool();
    }

    static std::optional<ObjectSpec> object_spec(const json::Value& cfg, const char* key,
                                                 const char* type, const char* id_property) {
        const json::Value* v = cfg.find(key);
        if (v == nullptr) return std::nullopt;
        const std::string at = std::string(key);
        if (!v->is_object())
            throw std::runtime_error("config: '" + at + "' must be a mapping with a 'mapping'");
        for (const auto& [k, x] : v->members())
            if (k != "mapping")
                throw std::runtime_error("config: " + at + ": unknown key '" + k + "' (mapping)");
        const json::Value* m = v->find("mapping");
        if (m == nullptr) throw std::runtime_error("config: " + at + ".mapping: is required");
        ObjectSpec spec{type, id_property, FieldMap::parse(*m, at + ".mapping")};
        bool has_id = false;
        for (const auto& r : spec.map.rules())
            has_id = has_id || r.field == id_property;
        if (!has_id)
            throw std::runtime_error("config: " + at + ".mapping." + id_property +
                                     ": is required (" + type + " are upserted by " + id_property +
                                     ")");
        return spec;
    }

    // ---- one batch --------------------------------------------------------

    // The records one event yields, or why it cannot yield any.
    struct Plan {
        std::optional<Result> verdict;  // decided before any call
        Record contact, company;
    };

    Plan plan(const clayhook::Event& e) const {
        Plan p;
        json::Value body;
        try {
            body = e.json();
        } catch (const json::ParseError& err) {
            p.verdict = Result::fail(std::string("the body is not JSON: ") + err.what());
            return p;
        }
        for (auto [spec, rec] :
             {std::pair{&contact_, &p.contact}, std::pair{&company_, &p.company}}) {
            if (!*spec) continue;
            FieldMap::Applied a = (*spec)->map.apply(body);
            if (!a.missing.empty()) {
                p.verdict = Result::fail("missing required field '" + a.missing + "' (" +
                                         (*spec)->type + " mapping)");
                return p;
            }
            const json::Value* id = a.get((*spec)->id_property);
            if (id == nullptr) continue;  // not required: no record of this type
            rec->present = true;
            rec->id = property_text(*id);
            for (const auto& [field, value] : a.values)
                rec->properties.set(field, property_text(value));
        }
        if (!p.contact.present && !p.company.present) {
            std::string need;
            if (contact_) need = "'" + contact_->id_property + "' for a contact";
            if (company_)
                need += (need.empty() ? "" : " or ") + std::string("'") + company_->id_property +
                        "' for a company";
            p.verdict = Result::fail("nothing to push: the event has no " + need);
        }
        return p;
    }

    void push(std::span<const clayhook::Event> batch, std::span<Result> results) {
        std::vector<Plan> plans;
        plans.reserve(batch.size());
        for (const auto& e : batch)
            plans.push_back(plan(e));

        // Upsert each object type; events with the same id share one input.
        std::vector<const Outcome*> company_of(batch.size(), nullptr);
        std::vector<const Outcome*> contact_of(batch.size(), nullptr);
        std::map<std::string, Outcome> companies, contacts;
        // An answer about HubSpot as a whole (401, 429, 5xx, no answer) stops
        // the pass: the calls after it would get the same.
        std::optional<Outcome> halt;
        if (company_) upsert(*company_, plans, &Plan::company, companies, company_of, halt);
        if (contact_) upsert(*contact_, plans, &Plan::contact, contacts, contact_of, halt);

        // Associations, for the events whose contact and company both went in.
        std::vector<Outcome> assoc(batch.size());
        if (associate_) associate(plans, contact_of, company_of, assoc, halt);

        for (size_t i = 0; i < batch.size(); ++i) {
            if (plans[i].verdict) {
                results[i] = *plans[i].verdict;
                continue;
            }
            std::vector<const Outcome*> parts;
            if (company_of[i]) parts.push_back(company_of[i]);
            if (contact_of[i]) parts.push_back(contact_of[i]);
            if (assoc[i].kind != Outcome::pending) parts.push_back(&assoc[i]);
            results[i] = combine(parts);
        }
    }

    // Fail beats retry (a retry cannot make a refused record pass), retry
    // beats done (the longest wait asked for).
    static Result combine(const std::vector<const Outcome*>& parts) {
        std::string fails, retries;
        std::chrono::milliseconds wait{0};
        for (const Outcome* o : parts) {
            if (o->kind == Outcome::fail) fails += (fails.empty() ? "" : "; ") + o->reason;
            if (o->kind == Outcome::retry || o->kind == Outcome::pending) {
                retries += (retries.empty() ? "" : "; ") + o->reason;
                wait = std::max(wait, o->wait);
            }
        }
        if (!fails.empty()) return Result::fail(fails);
        if (!retries.empty()) return Result::retry(retries, wait);
        return Result::done();
    }

    static std::string key_of(const ObjectSpec& spec, const std::string& id) {
        // HubSpot matches emails and domains without regard to case.
        return spec.id_property == "email" || spec.id_property == "domain" ? lower(id) : id;
    }

    void upsert(const ObjectSpec& spec, const std::vector<Plan>& plans, Record Plan::*which,
                std::map<std::string, Outcome>& outcomes, std::vector<const Outcome*>& of,
                std::optional<Outcome>& halt) {
        // Inputs in the order of first appearance; a later event's values win.
        std::vector<std::string> order;
        std::map<std::string, json::Value> inputs;
        std::vector<std::string> event_key(plans.size());
        for (size_t i = 0; i < plans.size(); ++i) {
            const Plan& p = plans[i];
            const Record& r = p.*which;
            if (p.verdict || !r.present) continue;
            std::string key = key_of(spec, r.id);
            event_key[i] = key;
            auto [it, added] = inputs.try_emplace(key, json::Value::object());
            if (added) {
                order.push_back(key);
                it->second.set("idProperty", spec.id_property);
                it->second.set("id", r.id);
                it->second.set("properties", json::Value::object());
            }
            json::Value props = *it->second.find("properties");
            for (const auto& [k, v] : r.properties.members())
                props.set(k, v);
            it->second.set("properties", std::move(props));
            outcomes[key];
        }
        for (size_t from = 0; from < order.size(); from += kMaxInputs) {
            std::vector<std::string> chunk(order.begin() + static_cast<std::ptrdiff_t>(from),
                                           order.begin() + static_cast<std::ptrdiff_t>(std::min(
                                                               order.size(), from + kMaxInputs)));
            call_upsert(spec, chunk, inputs, outcomes, halt);
        }
        for (size_t i = 0; i < plans.size(); ++i)
            if (!event_key[i].empty()) {
                const Outcome& o = outcomes[event_key[i]];
                of[i] = &o;
                count_record(spec.type, o);
            }
    }

    void count_record(const std::string& object, const Outcome& o) const {
        const char* r = o.kind == Outcome::done   ? "done"
                        : o.kind == Outcome::fail ? "failed"
                                                  : "retry";
        host_.counter_add("records_total", 1, "object=" + object + ",result=" + r);
    }

    // One batch upsert call for these inputs; on a whole-batch refusal of
    // several inputs, each input again on its own so one bad record does
    // not take the others down.
    void call_upsert(const ObjectSpec& spec, const std::vector<std::string>& keys,
                     const std::map<std::string, json::Value>& inputs,
                     std::map<std::string, Outcome>& outcomes, std::optional<Outcome>& halt) {
        if (halt) {
            for (const auto& k : keys)
                outcomes[k] = *halt;
            return;
        }
        json::Value list = json::Value::array();
        for (const auto& k : keys)
            list.push_back(inputs.at(k));
        json::Value body = json::Value::object();
        body.set("inputs", std::move(list));
        Answer a = post("/crm/v3/objects/" + spec.type + "/batch/upsert", json::dump(body));
        const std::string what = "HubSpot " + spec.type + " upsert";
        if (a.status == 200 || a.status == 201 || a.status == 207) {
            read_upsert(spec, keys, inputs, a, outcomes);
            return;
        }
        if ((a.status == 400 || a.status == 409 || a.status == 422) && keys.size() > 1) {
            host_.warn(what + " refused a batch of " + std::to_string(keys.size()) + " (" +
                       std::to_string(a.status) + ": " + hubspot_message(a.body) +
                       "); sending its records one by one");
            for (const auto& k : keys)
                call_upsert(spec, {k}, inputs, outcomes, halt);
            return;
        }
        Outcome o = verdict(what, a);
        if (a.status == 0 || a.status == 401 || a.status == 429 || a.status >= 500) halt = o;
        for (const auto& k : keys)
            outcomes[k] = o;
    }

    // An answer that is not a success, for every input of the call.
    Outcome verdict(const std::string& what, const Answer& a) {
        Outcome o;
        if (a.status == 0 && !a.retryable) {
            o.kind = Outcome::fail;
            o.reason = what + ": HubSpot's answer is unusable: " + a.error;
        } else if (a.status == 0) {
            o.kind = Outcome::retry;
            o.reason = what + ": HubSpot unreachable: " + a.error;
        } else if (a.status == 429) {
            o.kind = Outcome::retry;
            o.wait = rate_limit_wait(a);
            o.reason = what + ": rate limited (429 " + hubspot_message(a.body) + "); waiting " +
                       std::to_string(o.wait.count()) + " ms";
        } else if (a.status == 401) {
            o.kind = Outcome::fail;
            o.reason = what + ": HubSpot refused the token (401: " + hubspot_message(a.body) +
                       "); the private app token is wrong or revoked: fix 'token' and replay";
            // Once until a call succeeds again, not once per record.
            if (!token_refused_.exchange(true))
                host_.error(
                    "HubSpot refused the private app token (401): it is wrong or "
                    "revoked; every delivery fails until 'token' is fixed");
        } else if (a.status >= 500) {
            o.kind = Outcome::retry;
            o.reason = what + ": HubSpot answered " + std::to_string(a.status) + " (" +
                       hubspot_message(a.body) + ")";
        } else {
            o.kind = Outcome::fail;
            o.reason =
                what + " refused (" + std::to_string(a.status) + "): " + hubspot_message(a.body);
        }
        return o;
    }

    static std::chrono::milliseconds rate_limit_wait(const Answer& a) {
        if (a.retry_after) return *a.retry_after;
        int64_t ms = 0;
        const std::string& s = a.interval_ms;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), ms);
        if (ec == std::errc{} && end == s.data() + s.size() && ms >= 0)
            return std::chrono::milliseconds(ms);
        return std::chrono::milliseconds(10'000);  // HubSpot's ten-second window
    }

    // A 200/207: results for the inputs that went in, errors for the others.
    void read_upsert(const ObjectSpec& spec, const std::vector<std::string>& keys,
                     const std::map<std::string, json::Value>& inputs, const Answer& a,
                     std::map<std::string, Outcome>& outcomes) {
        json::Value doc;
        try {
            doc = json::parse(a.body);
        } catch (const std::exception&) {
        }
        const json::Value* results = doc.is_object() ? doc.find("results") : nullptr;
        const json::Value* errors = doc.is_object() ? doc.find("errors") : nullptr;
        std::vector<bool> matched(keys.size(), false);
        std::vector<bool> result_used;
        if (results && results->is_array()) {
            result_used.assign(results->size(), false);
            for (size_t r = 0; r < results->size(); ++r) {
                const json::Value& res = (*results)[r];
                const json::Value* props = res.find("properties");
                std::string id = props ? key_of(spec, props->get_string(spec.id_property, "")) : "";
                for (size_t k = 0; k < keys.size(); ++k)
                    if (!matched[k] && !id.empty() && keys[k] == id) {
                        matched[k] = true;
                        result_used[r] = true;
                        outcomes[keys[k]] = {Outcome::done, "", {}, res.get_string("id", "")};
                        break;
                    }
            }
            // No id property echoed: results come in request order (when all are there).
            if (results->size() == keys.size() && (!errors || errors->size() == 0))
                for (size_t k = 0; k < keys.size(); ++k)
                    if (!matched[k] && !result_used[k]) {
                        matched[k] = true;
                        outcomes[keys[k]] = {
                            Outcome::done, "", {}, (*results)[k].get_string("id", "")};
                    }
        }
        std::vector<std::pair<std::string, std::vector<std::string>>> errs;  // message, ids
        if (errors && errors->is_array())
            for (const auto& e : errors->items()) {
                std::string msg = e.get_string("message", "");
                std::string cat = e.get_string("category", "");
                std::vector<std::string> ids;
                if (const json::Value* c = e.at_path("context.ids"); c && c->is_array())
                    for (const auto& x : c->items())
                        if (x.is_string()) ids.push_back(key_of(spec, x.as_string()));
                errs.emplace_back(cat.empty() ? msg : cat + ": " + msg, std::move(ids));
            }
        const std::string what = "HubSpot " + spec.type + " upsert";
        for (size_t k = 0; k < keys.size(); ++k) {
            if (matched[k]) continue;
            const std::string id = inputs.at(keys[k]).get_string("id", "");
            std::string msg;
            for (const auto& [m, ids] : errs)
                if (std::find(ids.begin(), ids.end(), keys[k]) != ids.end()) msg = m;
            if (msg.empty())
                for (const auto& [m, ids] : errs)
                    if (ids.empty() && m.find(id) != std::string::npos) msg = m;
            if (msg.empty() && errs.size() == 1 && errs[0].second.empty()) msg = errs[0].first;
            Outcome o;
            if (!msg.empty()) {
                o.kind = Outcome::fail;
                o.reason = what + " refused " + spec.id_property + " '" + id + "': " + msg;
            } else if (!errs.empty()) {
                o.kind = Outcome::fail;
                o.reason = what + ": no result for " + spec.id_property + " '" + id + "'; " +
                           std::to_string(errs.size()) + " error(s), the first: " + errs[0].first;
            } else {
                o.kind = Outcome::retry;
                o.reason = what + ": HubSpot answered " + std::to_string(a.status) +
                           " without a result for " + spec.id_property + " '" + id + "'";
            }
            outcomes[keys[k]] = o;
        }
    }

    void associate(const std::vector<Plan>& plans, const std::vector<const Outcome*>& contact_of,
                   const std::vector<const Outcome*>& company_of, std::vector<Outcome>& assoc,
                   const std::optional<Outcome>& halt) {
        std::vector<size_t> linked;                              // the events to associate
        std::vector<std::pair<std::string, std::string>> pairs;  // unique (contact, company)
        std::vector<size_t> pair_of(plans.size(), 0);
        for (size_t i = 0; i < plans.size(); ++i) {
            const Outcome* c = contact_of[i];
            const Outcome* co = company_of[i];
            if (!c || !co || c->kind != Outcome::done || co->kind != Outcome::done) continue;
            if (c->object_id.empty() || co->object_id.empty()) continue;
            std::pair<std::string, std::string> p{c->object_id, co->object_id};
            auto it = std::find(pairs.begin(), pairs.end(), p);
            pair_of[i] = static_cast<size_t>(it - pairs.begin());
            if (it == pairs.end()) pairs.push_back(p);
            linked.push_back(i);
        }
        if (pairs.empty() || halt) return;
        json::Value list = json::Value::array();
        for (const auto& [contact, company] : pairs)
            list.push_back(json::Value::object()
                               .set("from", json::Value::object().set("id", contact))
                               .set("to", json::Value::object().set("id", company)));
        json::Value body = json::Value::object();
        body.set("inputs", std::move(list));
        Answer a = post("/crm/v4/associations/contacts/companies/batch/associate/default",
                        json::dump(body));
        std::vector<Outcome> per_pair(pairs.size());
        if (a.status == 200 || a.status == 201 || a.status == 207) {
            json::Value doc;
            try {
                doc = json::parse(a.body);
            } catch (const std::exception&) {
            }
            const json::Value* errors = doc.is_object() ? doc.find("errors") : nullptr;
            for (size_t p = 0; p < pairs.size(); ++p) {
                per_pair[p].kind = Outcome::done;
                if (!errors || !errors->is_array()) continue;
                for (const auto& e : errors->items()) {
                    bool mine = false;
                    if (const json::Value* ids = e.at_path("context.ids"); ids && ids->is_array())
                        for (const auto& x : ids->items())
                            mine = mine || (x.is_string() && (x.as_string() == pairs[p].first ||
                                                              x.as_string() == pairs[p].second));
                    if (mine || pairs.size() == 1) {
                        per_pair[p].kind = Outcome::fail;
                        per_pair[p].reason = "HubSpot association of contact " + pairs[p].first +
                                             " with company " + pairs[p].second +
                                             " refused: " + e.get_string("message", "");
                    }
                }
            }
        } else {
            Outcome o = verdict("HubSpot association", a);
            std::fill(per_pair.begin(), per_pair.end(), o);
        }
        for (size_t i : linked) {
            assoc[i] = per_pair[pair_of[i]];
            count_record("associations", assoc[i]);
        }
    }

    // ---- HTTP ---------------------------------------------------------------

    Answer post(const std::string& path, const std::string& body) {
        Answer a;
        try {
            http::Response r = client_->send(endpoint_, {"POST",
                                                         path,
                                                         {{"Authorization", "Bearer " + token_},
                                                          {"Content-Type", "application/json"},
                                                          {"Accept", "application/json"}},
                                                         body});
            a.status = r.status;
            a.body = std::move(r.body);
            a.retry_after = r.retry_after;
            if (const std::string* h = r.header("X-HubSpot-RateLimit-Interval-Milliseconds"))
                a.interval_ms = *h;
        } catch (const http::Error& e) {
            a.status = 0;
            a.error = e.what();
            a.retryable = e.retryable();
        }
        host_.counter_add(
            "api_calls_total", 1,
            "status=" + (a.status == 0 ? std::string("network") : std::to_string(a.status)));
        if (a.status >= 200 && a.status < 300) token_refused_.store(false);
        return a;
    }

    clayhook::Host& host_;
    std::string token_;
    std::optional<ObjectSpec> contact_, company_;
    bool associate_ = false;
    bool batch_ = true;
    http::Endpoint endpoint_;
    std::unique_ptr<http::Client> client_;
    std::atomic<bool> token_refused_{false};
};

CLAYHOOK_PLUGIN(HubspotPush)
