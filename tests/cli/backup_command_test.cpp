// `clayhook backup`: a consistent copy of the SQLite store of a running host,
// and a restore that works: a host started on the copy has every event (a
// sender's retry of one is a duplicate) and its pending deliveries.
#include "cli/Commands.h"
#include "store/SqliteStore.h"
#include "store/Store.h"
#include "store/journal/JournalFormat.h"
#include "support/HostProcess.h"
#include "support/SignedPost.h"
#include "support/StoreConfigFile.h"
#include "support/TempDir.h"

#include <clayhook/json.hpp>

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

using namespace clayhook;
using namespace clayhook::test;

namespace {

const char* kSecret = "backup-secret";

std::string config_for(const std::string& db) {
    return R"(admin: {enabled: false}
listener: {address: 127.0.0.1, port: 0}
store: {path: )" +
           db + R"(}
sources:
  - name: clay
    path: /webhooks/clay
    verify: {scheme: hmac-sha256, secrets: ["${BACKUP_SECRET}"]}
plugins:
  - name: waits
    library: )" +
           db + R"(.missing.so
    events: ["*"]
)";
}

std::string body(int i) {
    return R"({"event":"enrichment.completed","row_id":"r)" + std::to_string(i) +
           R"(","timestamp":"2026-11-26T12:00:42.042Z"})";
}

// A store at `db` (journal on) killed with `indexed` events in its tables
// and `held` more only in its journal; their ids, in order.
std::vector<std::string> killed_store(const std::string& db, int indexed, int held) {
    StoreConfig sc;
    sc.path = db;
    sc.journal = true;
    std::vector<std::string> ids;
    SqliteStore store(sc, 16);
    auto insert = [&](int i) {
        ids.push_back(store.insert(NewEvent{"clay", "t", "k" + std::to_string(i), "{}", 1}).id);
    };
    for (int i = 0; i < indexed; ++i)
        insert(i);
    REQUIRE(store.intake_journal()->drain());
    store.intake_journal()->pause_indexer(true);
    for (int i = indexed; i < indexed + held; ++i)
        insert(i);
    store.intake_journal()->abandon();
    return ids;
}

// The copy opened as a host would open it, once its journal is indexed.
std::unique_ptr<SqliteStore> open_restored(const std::string& copy) {
    StoreConfig restored;
    restored.path = copy;
    restored.journal = true;
    auto store = std::make_unique<SqliteStore>(restored, 16);
    REQUIRE(store->intake_journal()->drain());
    return store;
}

int backup(const std::vector<std::string>& args, std::string& out, std::string& err) {
    std::ostringstream o, e;
    std::vector<std::string> all = {"backup"};
    all.insert(all.end(), args.begin(), args.end());
    int code = run_cli(all, o, e);
    out = o.str();
    err = e.str();
    return code;
}

// `clayhook backup` of the store at `db` (journal on) into `copy`, which
// must succeed; what it printed.
std::string backed_up(TempDir& dir, const std::string& db, const std::string& copy) {
    std::string out, err;
    const int code = backup({"--config", journal_store_config(dir, db), copy}, out, err);
    INFO(out << err);
    REQUIRE(code == 0);
    return out;
}

}  // namespace

TEST_CASE("backup: a running host's store is copied whole, and a host started on the copy has it",
          "[cli][backup]") {
    HostProcess h;
    h.options.env["BACKUP_SECRET"] = kSecret;
    const std::string db = h.dir.file("var/clayhook.db");
    h.write_config(config_for(db));
    h.start();
    // Deliveries for a plugin that is down: they stay pending.
    for (int i = 0; i < 20; ++i)
        REQUIRE(signed_post(h.port(), kSecret, body(i)).status == 200);

    const std::string copy = h.dir.file("backup.db");
    std::string out, err;
    INFO(err);
    REQUIRE(backup({"--config", h.config, copy}, out, err) == 0);
    CHECK(out.find("backed up " + db + " to " + copy + ": 20 events, 20 deliveries") == 0);
    CHECK(out.find("(integrity ok)") != std::string::npos);
    struct stat st {};
    REQUIRE(::stat(copy.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    // Never over an existing file.
    CHECK(backup({"--config", h.config, copy}, out, err) == 1);
    CHECK(err.find("it is never overwritten") != std::string::npos);
    CHECK(h.stop() == 0);

    // The restore: a host on the copy.
    HostProcess r;
    r.options.env["BACKUP_SECRET"] = kSecret;
    const std::string restored = r.dir.file("var/clayhook.db");
    std::filesystem::create_directories(r.dir.file("var"));
    std::filesystem::copy_file(copy, restored);
    r.write_config(config_for(restored));
    r.start();
    for (int i : {0, 7, 19}) {
        auto again = signed_post(r.port(), kSecret, body(i));
        REQUIRE(again.status == 200);
        CHECK(json::parse(again.body).get_bool("duplicate", false));
    }
    CHECK(r.err().find("pending=0") != std::string::npos);  // the plugin is down: none loaded
    CHECK(r.stop() == 0);
    StoreConfig sc;
    sc.path = restored;
    auto store = open_store(sc, 16);
    CHECK(store->event_count() == 20);
    size_t pending = 0;
    store->load_pending([&](DeliveryRef&&) { ++pending; });
    CHECK(pending == 20);
}

TEST_CASE("backup: refused for PostgreSQL and without a target", "[cli][backup]") {
    TempDir dir;
    std::string out, err;
    CHECK(backup({}, out, err) == 2);
    auto cfg = dir.write("pg.yaml", R"(admin: {enabled: false}
store: {engine: postgres, postgres_url: "${PG_URL}"}
sources:
  - name: clay
    path: /webhooks/clay
    verify: {scheme: hmac-sha256, secrets: ["${BACKUP_SECRET}"]}
)");
    CHECK(backup({"--config", cfg, dir.file("x.db")}, out, err) == 1);
    CHECK(err.find("pg_dump") != std::string::npos);
}

TEST_CASE("backup: with the journal, records not yet indexed are copied and indexed on restore",
          "[cli][backup][journal]") {
    TempDir dir;
    const std::string db = dir.file("var/clayhook.db");
    const std::vector<std::string> ids = killed_store(db, 5, 7);  // 7 not indexed
    const std::string copy = dir.file("backup.db");
    const std::string out = backed_up(dir, db, copy);
    CHECK(out.find(": 5 events") != std::string::npos);
    CHECK(out.find("journal segments copied to " + copy + ".journal (12 records") !=
          std::string::npos);

    auto store = open_restored(copy);
    CHECK(store->event_count() == 12);
    for (const auto& id : ids)
        CHECK(store->get(id).has_value());
}

TEST_CASE(
    "backup: a damaged segment is copied with the whole records past the damage, and "
    "neither the copy kept aside nor the spare is",
    "[cli][backup][journal]") {
    TempDir dir;
    const std::string db = dir.file("var/clayhook.db");
    const std::vector<std::string> ids = killed_store(db, 0, 6);  // 6 not indexed
    const std::string jdir = db + ".journal";
    std::string seg;
    for (const auto& e : std::filesystem::directory_iterator(jdir))
        if (journal::segment_first_seq(e.path().filename().string())) seg = e.path().string();
    REQUIRE(!seg.empty());
    std::string bytes = read_file(seg);
    const auto scan = journal::scan_segment(bytes);
    REQUIRE(scan.records.size() == 6);
    // The third record's payload garbled: a bad CRC with whole records after it.
    size_t third = 0;
    for (int i = 0; i < 2; ++i)
        third += journal::decode(std::string_view(bytes).substr(third))->size;
    bytes[third + journal::kHeaderSize + 2] ^= 0x20;
    {
        std::ofstream out(seg, std::ios::binary | std::ios::trunc);
        out << bytes;
    }
    dir.write(
        "var/clayhook.db.journal/" + std::filesystem::path(seg).filename().string() + ".damaged",
        bytes);
    dir.write("var/clayhook.db.journal/spare.seg", std::string(4096, '\0'));

    const std::string copy = dir.file("backup.db");
    const std::string out = backed_up(dir, db, copy);
    CHECK(out.find("journal segments copied to " + copy + ".journal (5 records") !=
          std::string::npos);
    std::vector<std::string> copied;
    for (const auto& e : std::filesystem::directory_iterator(copy + ".journal"))
        copied.push_back(e.path().filename().string());
    CHECK(copied == std::vector<std::string>{std::filesystem::path(seg).filename().string()});

    auto store = open_restored(copy);
    CHECK(store->event_count() == 5);
    for (size_t i = 0; i < ids.size(); ++i)
        CHECK(store->get(ids[i]).has_value() == (i != 2));
}
