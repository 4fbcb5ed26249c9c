// The bundled salesforce-push, loaded as a real .so behind the real
// dispatcher and store, upserting into a fake Salesforce over a real socket.
#include "dispatch/DispatchRig.h"
#include "fakes/FakeSalesforce.h"
#include "support/TestPki.h"

#include <Poco/URI.h>

using namespace clayhook;
using namespace clayhook::test;
using namespace std::chrono_literals;

namespace {

const char* kMapping =
    R"({"Website":{"from":"data.company.domain","transform":["trim","lowercase"],"required":true},)"
    R"("Name":"data.company.name","Industry":"data.company.industry",)"
    R"("NumberOfEmployees":"data.company.employee_count","LinkedIn_URL__c":"data.linkedin.url"})";

std::string b64url_decode(std::string_view in) {
    std::string out;
    uint32_t acc = 0;
    int bits = 0;
    for (char c : in) {
        int v = c >= 'A' && c <= 'Z'   ? c - 'A'
                : c >= 'a' && c <= 'z' ? c - 'a' + 26
                : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '-'             ? 62
                : c == '_'             ? 63
                                       : -1;
        REQUIRE(v >= 0);
        acc = (acc << 6) | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xFF));
        }
    }
    return out;
}

std::string form_value(const std::string& form, const std::string& key) {
    size_t at = ("&" + form).find("&" + key + "=");
    if (at == std::string::npos) return "";
    size_t start = at + key.size() + 1;
    size_t end = form.find('&', start);
    std::string raw = form.substr(start, end == std::string::npos ? end : end - start);
    std::string out;
    Poco::URI::decode(raw, out);
    return out;
}

struct SalesforceRig : DispatchRig {
    FakeSalesforce sf;

    explicit SalesforceRig(FakeSalesforce::Options o = {}, std::string auth = "",
                           const std::string& extra = "")
        : sf(std::move(o)) {
        library = std::string(kBundledPluginDir) + "/salesforce-push.so";
        if (auth.empty())
            auth = R"({"client_credentials":{"client_id":"test-client-id",)"
                   R"("client_secret":"test-client-secret"}})";
        plugin.config_json = R"({"login_url":")" + sf.base_url() +
                             R"(","object":"Account","external_id_field":"Website",)" +
                             R"("limit_retry_ms":30,"timeout_ms":5000,"mapping":)" + kMapping +
                             R"(,"auth":)" + auth + extra + "}";
        dispatch.retry.max_attempts = 5;
    }

    std::string enriched(const std::string& domain, const std::string& company = "Company",
                         int employees = 1200) {
        ++counter;
        std::string row = "row_" + std::to_string(counter);
        return post_body(
            "enrichment.completed",
            R"({"event":"enrichment.completed","table_id":"t_abc123","row_id":")" + row +
                R"(","timestamp":"2026-11-26T12:00:42.042Z","data":{"email":"p@example.com",)" +
                R"("company":{"name":)" + json::quote(company) + R"(,"domain":)" +
                json::quote(domain) + R"(,"industry":"Software","employee_count":)" +
                std::to_string(employees) + R"(},"linkedin":{"url":"https://www.linkedin.com/in/)" +
                row + R"("}}})");
    }

    bool finished(const std::string& id) {
        return state_is(id, DeliveryState::done) || state_is(id, DeliveryState::dead);
    }
    double plugin_metric(const std::string& name, const std::string& labels = "") {
        return metric("clayhook_plugin_" + name, labels);
    }
    const FakeSalesforce::Record* record(const std::vector<FakeSalesforce::Record>& rs,
                                         const std::string& website) {
        for (const auto& r : rs)
            if (r.fields.get_string("Website", "") == website) return &r;
        return nullptr;
    }
};

}  // namespace

TEST_CASE("salesforce-push: one token for many records, each upserted by external id",
          "[salesforce-push]") {
    SalesforceRig rig;
    rig.sf.set_api_usage(10000, 100000);
    rig.up();
    std::vector<std::string> ids;
    for (int i = 0; i < 4; ++i) {
        // Mapped with trim and lowercase: " Company0.COM " is company0.com.
        ids.push_back(
            rig.enriched(" Company" + std::to_string(i) + ".COM ", "Company " + std::to_string(i)));
        REQUIRE(wait_until([&] { return rig.finished(ids.back()); }));
        CHECK(rig.state_is(ids.back(), DeliveryState::done));
    }
    CHECK(rig.sf.token_requests() == 1);
    auto reqs = rig.sf.requests();
    REQUIRE(reqs.size() == 5);
    CHECK(reqs[0].method == "POST");
    CHECK(reqs[0].path == "/services/oauth2/token");
    CHECK(reqs[0].content_type == "application/x-www-form-urlencoded");
    CHECK(form_value(reqs[0].body, "grant_type") == "client_credentials");
    CHECK(form_value(reqs[0].body, "client_id") == "test-client-id");
    CHECK(form_value(reqs[0].body, "client_secret") == "test-client-secret");
    auto tokens = rig.sf.issued_tokens();
    REQUIRE(tokens.size() == 1);
    for (int i = 0; i < 4; ++i) {
        const auto& r = reqs[static_cast<size_t>(i) + 1];
        CHECK(r.method == "PATCH");
        CHECK(r.path ==
              "/services/data/v60.0/sobjects/Account/Website/company" + std::to_string(i) + ".com");
        CHECK(r.authorization == "Bearer " + tokens[0]);
        auto body = json::parse(r.body);
        CHECK(body.find("Website") == nullptr);  // it is in the URL
        CHECK(body.get_string("Name", "") == "Company " + std::to_string(i));
        CHECK(body.get_string("Industry", "") == "Software");
        CHECK(body.get_int("NumberOfEmployees", 0) == 1200);
    }
    auto records = rig.sf.records();
    REQUIRE(records.size() == 4);
    const auto* r0 = rig.record(records, "company0.com");
    REQUIRE(r0 != nullptr);
    CHECK(r0->object == "Account");
    CHECK(r0->fields.get_string("Name", "") == "Company 0");
    CHECK(r0->fields.get_string("LinkedIn_URL__c", "").rfind("https://www.linkedin.com/in/", 0) ==
          0);
    CHECK(rig.plugin_metric("token_fetches_total", ",result=\"ok\"") == 1);
    CHECK(rig.plugin_metric("records_total", ",result=\"created\"") == 4);
    // Sforce-Limit-Info: api-usage=N/M of the last answer, as gauges.
    CHECK(rig.sf.api_used() == 10004);
    CHECK(rig.plugin_metric("api_usage") == 10004);
    CHECK(rig.plugin_metric("api_limit") == 100000);
    // The secret never reaches the log.
    rig.down();
    CHECK(rig.log_out.str().find("test-client-secret") == std::string::npos);
}

TEST_CASE("salesforce-push: the same external id creates once, then updates", "[salesforce-push]") {
    SalesforceRig rig;
    rig.up();
    std::string a = rig.enriched("acme.com", "Acme (old)");
    REQUIRE(wait_until([&] { return rig.finished(a); }));
    std::string b = rig.enriched("  ACME.com", "Acme Inc", 1500);
    REQUIRE(wait_until([&] { return rig.finished(b); }));
    CHECK(rig.state_is(a, DeliveryState::done));
    CHECK(rig.state_is(b, DeliveryState::done));
    auto records = rig.sf.records();
    REQUIRE(records.size() == 1);
    CHECK(records[0].writes == 2);
    CHECK(records[0].fields.get_string("Name", "") == "Acme Inc");
    CHECK(records[0].fields.get_int("NumberOfEmployees", 0) == 1500);
    CHECK(rig.plugin_metric("records_total", ",result=\"created\"") == 1);
    CHECK(rig.plugin_metric("records_total", ",result=\"updated\"") == 1);
    // An older API answers an update with 204 and no body: updated as well.
    rig.sf.answer_updates_with_204(true);
    std::string c = rig.enriched("acme.com", "Acme Corp");
    REQUIRE(wait_until([&] { return rig.finished(c); }));
    CHECK(rig.state_is(c, DeliveryState::done));
    REQUIRE(rig.sf.records().size() == 1);
    CHECK(rig.sf.records()[0].fields.get_string("Name", "") == "Acme Corp");
    CHECK(rig.plugin_metric("records_total", ",result=\"updated\"") == 2);
}

TEST_CASE("salesforce-push: an expired token is fetched again once and the call replayed",
          "[salesforce-push]") {
    SalesforceRig rig;
    rig.up();
    std::string a = rig.enriched("first.com");
    REQUIRE(wait_until([&] { return rig.finished(a); }));
    rig.sf.expire_tokens();
    std::string b = rig.enriched("second.com");
    REQUIRE(wait_until([&] { return rig.finished(b); }));
    CHECK(rig.state_is(b, DeliveryState::done));
    CHECK(rig.delivery(b).attempts == 1);  // within the one call, not a host retry
    CHECK(rig.sf.token_requests() == 2);
    auto tokens = rig.sf.issued_tokens();
    REQUIRE(tokens.size() == 2);
    auto reqs = rig.sf.requests();
    REQUIRE(reqs.size() == 5);  // token, PATCH, PATCH (401), token, PATCH
    CHECK(reqs[2].authorization == "Bearer " + tokens[0]);
    CHECK(reqs[3].path == "/services/oauth2/token");
    CHECK(reqs[4].authorization == "Bearer " + tokens[1]);
    CHECK(reqs[4].path == reqs[2].path);
    CHECK(rig.sf.records().size() == 2);
    CHECK(rig.plugin_metric("token_fetches_total", ",result=\"ok\"") == 2);
}

TEST_CASE("salesforce-push: a batch is one collections upsert with per-record results in order",
          "[salesforce-push]") {
    SalesforceRig rig;
    rig.concurrency = 1;
    rig.up();
    // One that exists already, so that the batch updates it.
    std::string seed = rig.enriched("company3.com", "Seeded");
    REQUIRE(wait_until([&] { return rig.finished(seed); }));
    rig.sf.reject("company2.com", "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                  "Employees must be a positive number", {"NumberOfEmployees"});
    rig.dispatcher->set_paused("p", true);
    std::vector<std::string> ids;
    for (int i = 0; i < 6; ++i)
        ids.push_back(
            rig.enriched("company" + std::to_string(i) + ".com", "Company " + std::to_string(i)));
    REQUIRE(wait_until([&] { return rig.dispatcher->status()[0].due == 6; }));
    rig.dispatcher->set_paused("p", false);
    REQUIRE(wait_until([&] {
        for (const auto& id : ids)
            if (!rig.finished(id)) return false;
        return true;
    }));

    std::vector<FakeSalesforce::Request> collections;
    for (const auto& r : rig.sf.api_requests())
        if (r.path.find("/composite/") != std::string::npos) collections.push_back(r);
    REQUIRE(collections.size() == 1);
    CHECK(collections[0].method == "PATCH");
    CHECK(collections[0].path == "/services/data/v60.0/composite/sobjects/Account/Website");
    auto doc = json::parse(collections[0].body);
    CHECK(doc.find("allOrNone") != nullptr);
    CHECK_FALSE(doc.get_bool("allOrNone", true));
    const json::Value* recs = doc.find("records");
    REQUIRE(recs != nullptr);
    REQUIRE(recs->size() == 6);
    for (size_t i = 0; i < 6; ++i) {
        CHECK((*recs)[i].get_string("Website", "") == "company" + std::to_string(i) + ".com");
        const json::Value* type = (*recs)[i].at_path("attributes.type");
        REQUIRE(type != nullptr);
        CHECK(type->as_string() == "Account");
    }
    CHECK(rig.sf.api_requests().size() == 2);  // the seed and the one batch

    // Results by position: the refused record alone is dead, with Salesforce's message.
    for (size_t i = 0; i < 6; ++i) {
        INFO("record " << i);
        if (i == 2) {
            CHECK(rig.state_is(ids[i], DeliveryState::dead));
            CHECK(rig.delivery(ids[i]).last_error ==
                  "failed: Salesforce refused the record: FIELD_CUSTOM_VALIDATION_EXCEPTION: "
                  "Employees must be a positive number (fields: NumberOfEmployees)");
        } else {
            CHECK(rig.state_is(ids[i], DeliveryState::done));
        }
    }
    auto records = rig.sf.records();
    CHECK(records.size() == 5);  // company0, 1, 3 (seeded, updated), 4, 5
    CHECK(rig.record(records, "company2.com") == nullptr);
    const auto* updated = rig.record(records, "company3.com");
    REQUIRE(updated != nullptr);
    CHECK(updated->writes == 2);
    CHECK(updated->fields.get_string("Name", "") == "Company 3");
    CHECK(rig.plugin_metric("records_total", ",result=\"created\"") == 5);
    CHECK(rig.plugin_metric("records_total", ",result=\"updated\"") == 1);
    CHECK(rig.plugin_metric("records_total", ",result=\"failed\"") == 1);
    CHECK(rig.sf.token_requests() == 1);
}

TEST_CASE("salesforce-push: one external id twice in a batch goes out in two requests, in order",
          "[salesforce-push]") {
    SalesforceRig rig;
    rig.concurrency = 1;
    rig.up();
    rig.dispatcher->set_paused("p", true);
    std::vector<std::string> ids{rig.enriched("dup.com", "First"), rig.enriched("other.com"),
                                 rig.enriched("DUP.com", "Second")};
    REQUIRE(wait_until([&] { return rig.dispatcher->status()[0].due == 3; }));
    rig.dispatcher->set_paused("p", false);
    REQUIRE(wait_until([&] {
        for (const auto& id : ids)
            if (!rig.finished(id)) return false;
        return true;
    }));
    for (const auto& id : ids)
        CHECK(rig.state_is(id, DeliveryState::done));
    auto api = rig.sf.api_requests();
    REQUIRE(api.size() == 2);
    // The first of each id together, then the second "dup.com" on its own.
    CHECK(api[0].path == "/services/data/v60.0/composite/sobjects/Account/Website");
    CHECK(json::parse(api[0].body).find("records")->size() == 2);
    CHECK(api[1].path == "/services/data/v60.0/sobjects/Account/Website/dup.com");
    auto records = rig.sf.records();
    REQUIRE(records.size() == 2);
    const auto* dup = rig.record(records, "dup.com");
    REQUIRE(dup != nullptr);
    CHECK(dup->writes == 2);
    CHECK(dup->fields.get_string("Name", "") == "Second");
}

TEST_CASE("salesforce-push: concurrent calls share one token fetch, a batch survives expiry",
          "[salesforce-push]") {
    SalesforceRig rig;
    rig.concurrency = 4;
    rig.up();
    std::vector<std::string> ids;
    for (int i = 0; i < 12; ++i)
        ids.push_back(rig.enriched("c" + std::to_string(i) + ".com"));
    REQUIRE(wait_until([&] {
        for (const auto& id : ids)
            if (!rig.finished(id)) return false;
        return true;
    }));
    for (const auto& id : ids)
        CHECK(rig.state_is(id, DeliveryState::done));
    CHECK(rig.sf.token_requests() == 1);
    CHECK(rig.sf.records().size() == 12);
    // A collections call with an expired token: a new token, the same request again.
    rig.sf.expire_tokens();
    rig.dispatcher->set_paused("p", true);
    std::vector<std::string> more;
    for (int i = 0; i < 3; ++i)
        more.push_back(rig.enriched("d" + std::to_string(i) + ".com"));
    REQUIRE(wait_until([&] { return rig.dispatcher->status()[0].due == 3; }));
    rig.dispatcher->set_paused("p", false);
    REQUIRE(wait_until([&] {
        for (const auto& id : more)
            if (!rig.finished(id)) return false;
        return true;
    }));
    for (const auto& id : more) {
        CHECK(rig.state_is(id, DeliveryState::done));
        CHECK(rig.delivery(id).attempts == 1);
    }
    CHECK(rig.sf.token_requests() == 2);
    auto reqs = rig.sf.requests();
    REQUIRE(reqs.size() >= 3);
    CHECK(reqs[reqs.size() - 2].path == "/services/oauth2/token");
    CHECK(reqs.back().path == reqs[reqs.size() - 3].path);
    CHECK(reqs.back().body == reqs[reqs.size() - 3].body);
    CHECK(rig.sf.records().size() == 15);
}

TEST_CASE("salesforce-push: an external id is percent-encoded in the URL", "[salesforce-push]") {
    SalesforceRig rig;
    rig.plugin.config_json =
        R"({"login_url":")" + rig.sf.base_url() +
        R"(","object":"Lead","external_id_field":"Clay_Row_Id__c","api_version":"v59.0",)"
        R"("mapping":{"Clay_Row_Id__c":"row_id","Company":{"from":"data.company.name",)"
        R"("default":"Unknown"}},"auth":{"client_credentials":{"client_id":"test-client-id",)"
        R"("client_secret":"test-client-secret"}}})";
    rig.up();
    std::string id = rig.post_body("enrichment.completed",
                                   R"({"event":"enrichment.completed","row_id":"row 1/2?x",)"
                                   R"("data":{"company":{}}})");
    REQUIRE(wait_until([&] { return rig.finished(id); }));
    CHECK(rig.state_is(id, DeliveryState::done));
    auto api = rig.sf.api_requests();
    REQUIRE(api.size() == 1);
    CHECK(api[0].path == "/services/data/v59.0/sobjects/Lead/Clay_Row_Id__c/row%201%2F2%3Fx");
    CHECK(api[0].body == R"({"Company":"Unknown"})");
    auto records = rig.sf.records();
    REQUIRE(records.size() == 1);
    CHECK(records[0].object == "Lead");
    CHECK(records[0].fields.get_string("Clay_Row_Id__c", "") == "row 1/2?x");
}

TEST_CASE("salesforce-push: a validation error on a single upsert fails that record",
          "[salesforce-push]") {
    SalesforceRig rig;
    rig.up();
    rig.sf.reject("bad.com", "REQUIRED_FIELD_MISSING", "Required fields are missing: [Phone]",
                  {"Phone"});
    std::string bad = rig.enriched("bad.com");
    REQUIRE(wait_until([&] { return rig.finished(bad); }));
    CHECK(rig.state_is(bad, DeliveryState::dead));
    CHECK(rig.delivery(bad).attempts == 1);
    CHECK(rig.delivery(bad).last_error ==
          "failed: Salesforce refused the record: REQUIRED_FIELD_MISSING: Required fields are "
          "missing: [Phone] (fields: Phone)");
    std::string good = rig.enriched("good.com");
    REQUIRE(wait_until([&] { return rig.finished(good); }));
    CHECK(rig.state_is(good, DeliveryState::done));
}

TEST_CASE("salesforce-push: REQUEST_LIMIT_EXCEEDED and 5xx are retried", "[salesforce-push]") {
    SalesforceRig rig;
    rig.up();
    rig.sf.fail_next(1, 403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.");
    rig.sf.fail_next(1, 503, "SERVER_UNAVAILABLE", "Service temporarily unavailable");
    std::string id = rig.enriched("limited.com");
    REQUIRE(wait_until([&] { return rig.finished(id); }));
    CHECK(rig.state_is(id, DeliveryState::done));
    auto ds = rig.store->event_deliveries(id);
    REQUIRE(ds.size() == 1);
    CHECK(ds[0].attempts == 3);
    REQUIRE(ds[0].history.size() >= 2);
    CHECK(ds[0].history[0].outcome == "retry");
    CHECK_THAT(ds[0].history[0].reason,
               Catch::Contains("403: REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded."));
    CHECK(ds[0].history[1].outcome == "retry");
    CHECK_THAT(ds[0].history[1].reason, Catch::Contains("503: SERVER_UNAVAILABLE"));
    auto api = rig.sf.api_requests();
    REQUIRE(api.size() == 3);
    // limit_retry_ms (30): the dispatcher schedules in whole ms of the wall
    // clock, the fake stamps requests with the steady clock, so allow 1 ms.
    CHECK(api[1].at - api[0].at >= 29ms);
    CHECK(rig.sf.records().size() == 1);
    CHECK(rig.sf.token_requests() == 1);
    CHECK(rig.plugin_metric("records_total", ",result=\"retried\"") == 2);
    CHECK(rig.plugin_metric("records_total", ",result=\"created\"") == 1);
}

TEST_CASE("salesforce-push: JWT bearer auth with an RSA key", "[salesforce-push]") {
    // Keys made with the openssl command (without it the test fails).
    TempDir keys;
    std::string key = keys.file("key.pem"), pub = keys.file("pub.pem");
    openssl({"genrsa", "-out", key, "2048"});
    openssl({"rsa", "-in", key, "-pubout", "-out", pub});
    FakeSalesforce::Options o;
    o.jwt_public_key_file = pub;
    auto jwt_auth = [&](const std::string& user) {
        return R"({"jwt_bearer":{"client_id":"test-client-id","username":")" + user +
               R"(","private_key_file":)" + json::quote(key) + "}}";
    };

    SECTION("a signed assertion gets a token, and the record is upserted") {
        SalesforceRig rig(o, jwt_auth(o.username));
        rig.up();
        std::string id = rig.enriched("jwt.com");
        REQUIRE(wait_until([&] { return rig.finished(id); }));
        CHECK(rig.state_is(id, DeliveryState::done));
        auto reqs = rig.sf.requests();
        REQUIRE(reqs.size() == 2);
        CHECK(reqs[0].path == "/services/oauth2/token");
        CHECK(form_value(reqs[0].body, "grant_type") ==
              "urn:ietf:params:oauth:grant-type:jwt-bearer");
        std::string jwt = form_value(reqs[0].body, "assertion");
        size_t d1 = jwt.find('.'), d2 = jwt.rfind('.');
        REQUIRE(d1 != d2);
        CHECK(json::parse(b64url_decode(jwt.substr(0, d1))).get_string("alg", "") == "RS256");
        auto claims = json::parse(b64url_decode(jwt.substr(d1 + 1, d2 - d1 - 1)));
        CHECK(claims.get_string("iss", "") == "test-client-id");
        CHECK(claims.get_string("sub", "") == o.username);
        CHECK(claims.get_string("aud", "") == rig.sf.base_url());
        int64_t left = claims.get_int("exp", 0) - unix_ms() / 1000;
        CHECK(left > 150);
        CHECK(left <= 180);
        CHECK(reqs[1].authorization == "Bearer " + rig.sf.issued_tokens().at(0));
        CHECK(rig.sf.records().size() == 1);
    }
    SECTION("an encrypted key or one that is not RSA refuses the plugin") {
        std::string enc = keys.file("enc.pem"), ec = keys.file("ec.pem");
        openssl({"genrsa", "-aes256", "-passout", "pass:secret", "-out", enc, "2048"});
        openssl({"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out",
                 ec});
        for (const auto& [file, why] :
             {std::pair{enc, std::string("holds no unencrypted PEM private key")},
              std::pair{ec, std::string("is not an RSA key")}}) {
            SalesforceRig rig(o, R"({"jwt_bearer":{"client_id":"test-client-id","username":"u",)"
                                 R"("private_key_file":)" +
                                     json::quote(file) + "}}");
            try {
                rig.up();
                FAIL("created with " << file);
            } catch (const PluginError& e) {
                CHECK_THAT(std::string(e.what()), Catch::Contains(why));
            }
        }
    }
    SECTION("a user who has not approved the app: invalid_grant, dead, one request") {
        SalesforceRig rig(o, jwt_auth("someone.else@example.com"));
        rig.up();
        std::string id = rig.enriched("jwt.com");
        REQUIRE(wait_until([&] { return rig.finished(id); }));
        CHECK(rig.state_is(id, DeliveryState::dead));
        CHECK(rig.delivery(id).attempts == 1);
        CHECK(rig.delivery(id).last_error ==
              "failed: authentication failed: Salesforce token endpoint answered 400 "
              "invalid_grant: user hasn't approved this consumer");
        CHECK(rig.sf.requests().size() == 1);
    }
}

TEST_CASE("salesforce-push: a record without a required field is dead, naming it",
          "[salesforce-push]") {
    SalesforceRig rig;
    rig.up();
    std::string none = rig.post_body(
        "enrichment.completed",
        R"({"event":"enrichment.completed","row_id":"row_9","data":{"company":{"name":"NoSite"}}})");
    std::string blank = rig.enriched("   ");  // empty after trim
    REQUIRE(wait_until([&] { return rig.finished(none) && rig.finished(blank); }));
    for (const auto& id : {none, blank}) {
        CHECK(rig.state_is(id, DeliveryState::dead));
        CHECK(rig.delivery(id).attempts == 1);
        CHECK(rig.delivery(id).last_error ==
              "failed: required field Website is missing or empty (from data.company.domain)");
    }
    CHECK(rig.sf.requests().empty());  // no token, no call
    CHECK(rig.plugin_metric("records_total", ",result=\"failed\"") == 2);
}

TEST_CASE("salesforce-push: invalid_client fails loudly, once, without a loop",
          "[salesforce-push]") {
    SalesforceRig rig({}, R"({"client_credentials":{"client_id":"test-client-id",)"
                          R"("client_secret":"a-wrong-secret-123"}})");
    rig.up();
    std::string a = rig.enriched("one.com");
    REQUIRE(wait_until([&] { return rig.finished(a); }));
    CHECK(rig.state_is(a, DeliveryState::dead));
    CHECK(rig.delivery(a).attempts == 1);
    CHECK(rig.delivery(a).last_error ==
          "failed: authentication failed: Salesforce token endpoint answered 400 invalid_client: "
          "invalid client credentials");
    CHECK(rig.sf.requests().size() == 1);
    CHECK(rig.sf.api_requests().empty());
    CHECK(rig.plugin_metric("token_fetches_total", ",result=\"refused\"") == 1);
    // A later delivery asks once more (the credentials may have been fixed), once.
    std::string b = rig.enriched("two.com");
    REQUIRE(wait_until([&] { return rig.finished(b); }));
    CHECK(rig.state_is(b, DeliveryState::dead));
    CHECK(rig.sf.requests().size() == 2);
    rig.down();
    CHECK_THAT(rig.log_out.str(), Catch::Contains("Salesforce authentication failed"));
    CHECK(rig.log_out.str().find("a-wrong-secret-123") == std::string::npos);
}

TEST_CASE("salesforce-push: refuses configs it cannot work with", "[salesforce-push]") {
    TempDir stage;
    std::ostringstream log_out;
    Logger log(log_out, Level::info);
    Metrics metrics;
    auto lib = PluginLibrary::load("s", std::string(kBundledPluginDir) + "/salesforce-push.so",
                                   stage.path().string());
    const std::string auth =
        R"("auth":{"client_credentials":{"client_id":"i","client_secret":"s"}})";
    auto refused = [&](const std::string& config) -> std::string {
        PluginConfig pc;
        pc.name = "s";
        pc.config_json = config;
        try {
            PluginInstance::create(lib, pc, log, metrics);
        } catch (const PluginError& e) {
            return e.what();
        }
        return "(created)";
    };
    CHECK_THAT(refused(R"({"object":"Account","external_id_field":"Clay_Row_Id__c",)"
                       R"("mapping":{"Website":"data.company.domain"},)" +
                       auth + "}"),
               Catch::Contains("external_id_field 'Clay_Row_Id__c' must be mapped"));
    CHECK_THAT(refused(R"({"object":"Account","external_id_field":"Website",)"
                       R"("mapping":{"Website":"data.company.domain"}})"),
               Catch::Contains("config.auth: is required"));
    CHECK_THAT(refused(R"({"external_id_field":"Website","mapping":{"Website":"x"},)" + auth + "}"),
               Catch::Contains("config.object: is required"));
    CHECK_THAT(refused(R"({"object":"Account","external_id_field":"Website",)"
                       R"("mapping":{"Website":{"from":"x","transform":["shout"]}},)" +
                       auth + "}"),
               Catch::Contains("unknown transform 'shout'"));
    CHECK_THAT(refused(R"({"object":"Account","external_id_field":"Website",)"
                       R"("mapping":{"Website":"x"},"auth":{"jwt_bearer":{"client_id":"i",)"
                       R"("username":"u","private_key_file":"/nonexistent/key.pem"}}})"),
               Catch::Contains("private_key_file: cannot open /nonexistent/key.pem"));
    // Top-level keys are the host's to check (the declaration), nested ones
    // (auth) the plugin's.
    CHECK_THAT(refused(R"({"object":"Account","external_id_field":"Website",)"
                       R"("mapping":{"Website":"x"},"timeout_s":"5s",)" +
                       auth + "}"),
               Catch::Contains("plugins.s.config.timeout_s: unknown key (did you mean "
                               "'timeout_ms'?)"));
    CHECK_THAT(refused(R"({"object":"Account","external_id_field":"Website",)"
                       R"("mapping":{"Website":"x"},)"
                       R"("auth":{"client_credentials":{"client_id":"i","client_secret":"s",)"
                       R"("scope":"x"}}})"),
               Catch::Contains("config: auth.client_credentials: unknown key 'scope'"));
    // A bare number in the *_ms keys is milliseconds (declared duration_ms).
    CHECK_THAT(refused(R"({"object":"Account","external_id_field":"Website",)"
                       R"("mapping":{"Website":"x"},"timeout_ms":600001,)" +
                       auth + "}"),
               Catch::Contains("'timeout_ms' must be from 1ms to 10m"));
    CHECK(refused(R"({"object":"Account","external_id_field":"Website",)"
                  R"("mapping":{"Website":"x"},"timeout_ms":600000,"limit_retry_ms":86400000,)" +
                  auth + "}") == "(created)");
    CHECK(refused(R"({"object":"Account","external_id_field":"Website",)"
                  R"("mapping":{"Website":"x"},)" +
                  auth + "}") == "(created)");
}
