// The SQLite store with its intake journal (store.journal: true) over real
// files in a fresh temp folder: acknowledged means synced to a segment, the
// records reach the tables behind the answer, dedup holds across memory and
// tables under concurrency, and a kill (the threads abandoned as SIGKILL
// leaves them) or a torn tail loses nothing acknowledged.
#include "store/SqliteStore.h"
#include "store/journal/JournalFormat.h"
#include "support/StoreConfigFile.h"
#include "support/Subprocess.h"
#include "support/TempDir.h"
#include "support/TestPaths.h"
#include "support/Wait.h"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

using namespace clayhook;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

StoreConfig journal_config(const test::TempDir& dir) {
    StoreConfig c;
    c.path = dir.file("clayhook.db");
    c.journal = true;
    return c;
}

NewEvent event(std::string_view key, std::string_view body = R"({"event":"x"})") {
    return NewEvent{"clay", "enrichment.completed", key, body, 1'764'000'000'000};
}

// Rows in the events table, read with a connection of our own (what
// `sqlite3 var/clayhook.db` sees).
int64_t rows_in_tables(const std::string& db_path, const std::string& where = "1") {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    const std::string sql = "SELECT count(*) FROM events WHERE " + where;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(s) == SQLITE_ROW);
    const int64_t n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

// Every file in the journal's folder (segments, and the spare prepared in
// advance), sorted.
std::vector<fs::path> journal_files(const std::string& db_path) {
    std::vector<fs::path> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(db_path + ".journal", ec))
        out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<fs::path> segments(const std::string& db_path) {
    std::vector<fs::path> out;
    for (auto& p : journal_files(db_path))
        if (p.filename().string().rfind("seg-", 0) == 0) out.push_back(p);
    return out;
}

// The events' ids in seq order, read with a connection of our own.
std::vector<std::string> ids_in_seq_order(const std::string& db_path) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, "SELECT id FROM events ORDER BY seq", -1, &s, nullptr) ==
            SQLITE_OK);
    std::vector<std::string> ids;
    while (sqlite3_step(s) == SQLITE_ROW)
        ids.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)));
    sqlite3_finalize(s);
    sqlite3_close(db);
    return ids;
}

// Runs `sql` on the database with a connection of our own.
void tamper(const std::string& db_path, const std::string& sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(db_path.c_str(), &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
}

// A segment of the store's journal written by hand, as a host killed before
// indexing would leave it: one record per key, seqs from `first`, ids
// `id_prefix` + seq.
// A record as the journal writes it, with an empty JSON body.
journal::Record small_record(uint64_t seq, std::string id, std::string key) {
    journal::Record r;
    r.seq = seq;
    r.id = std::move(id);
    r.source = "clay";
    r.type = "enrichment.completed";
    r.key = std::move(key);
    r.body = "{}";
    return r;
}

void write_segment(const std::string& db_path, uint64_t first, const std::vector<std::string>& keys,
                   const std::string& id_prefix) {
    std::string seg;
    uint64_t seq = first;
    for (const std::string& key : keys) {
        REQUIRE(journal::encode(small_record(seq, id_prefix + std::to_string(seq), key), seg));
        ++seq;
    }
    char name[40];
    std::snprintf(name, sizeof name, "seg-%016llx.log", static_cast<unsigned long long>(first));
    std::ofstream(db_path + ".journal/" + name, std::ios::binary) << seg;
}

journal::Journal& journal_of(SqliteStore& s) {
    REQUIRE(s.intake_journal() != nullptr);
    return *s.intake_journal();
}

}  // namespace

TEST_CASE("journal: an acknowledged delivery is in a segment, then in the tables", "[journal]") {
    test::TempDir dir;
    const StoreConfig cfg = journal_config(dir);
    SqliteStore store(cfg, 64);
    journal_of(store).pause_indexer(true);

    NewDelivery sink{"sink", ""};
    NewEvent e = event("row-1:ts-1", R"({"event":"enrichment.completed","row_id":"row-1"})");
    e.deliveries = std::span<const NewDelivery>(&sink, 1);
    const InsertResult r = store.insert(e);
    REQUIRE(r.status == InsertStatus::stored);
    CHECK(is_event_id(r.id));

    // Not indexed yet: on disk in the journal, and visible through the store.
    CHECK(rows_in_tables(cfg.path) == 0);
    const auto segs = segments(cfg.path);
    REQUIRE(segs.size() == 1);
    std::ifstream in(segs[0], std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto scan = journal::scan_segment(bytes);
    REQUIRE(scan.records.size() == 1);
    CHECK(scan.records[0].id == r.id);
    CHECK(scan.records[0].body == e.body);
    REQUIRE(scan.records[0].deliveries.size() == 1);
    CHECK(scan.records[0].deliveries[0].plugin == "sink");
    auto got = store.get(r.id);
    REQUIRE(got);
    CHECK(got->body == e.body);
    CHECK(store.event_count() == 1);
    // A copy is answered from memory with the same id.
    const InsertResult dup = store.insert(event("row-1:ts-1"));
    CHECK(dup.status == InsertStatus::duplicate);
    CHECK(dup.id == r.id);

    journal_of(store).pause_indexer(false);
    REQUIRE(journal_of(store).drain());
    CHECK(rows_in_tables(cfg.path, "id = '" + r.id + "'") == 1);
    CHECK(store.event_count() == 1);
    CHECK(journal_of(store).stats().backlog == 0);
    // The delivery row came with it.
    size_t pending = 0;
    store.load_pending([&](DeliveryRef&& d) {
        CHECK(d.plugin == "sink");
        ++pending;
    });
    CHECK(pending == 1);
    // Indexed: a copy is now answered from the tables, same id.
    const InsertResult dup2 = store.insert(event("row-1:ts-1"));
    CHECK(dup2.status == InsertStatus::duplicate);
    CHECK(dup2.id == r.id);
}

TEST_CASE("journal: N concurrent copies of one key store exactly one, before and after indexing",
          "[journal]") {
    test::TempDir dir;
    const StoreConfig cfg = journal_config(dir);
    SqliteStore store(cfg, 64);
    for (bool paused : {true, false}) {
        journal_of(store).pause_indexer(paused);
        const std::string key = paused ? "in-memory" : "racing-the-indexer";
        constexpr int kThreads = 16, kRounds = 20;
        for (int round = 0; round < kRounds; ++round) {
            const std::string k = key + std::to_string(round);
            std::latch go(kThreads);
            std::vector<InsertResult> results(kThreads);
            std::vector<std::thread> threads;
            for (int t = 0; t < kThreads; ++t)
                threads.emplace_back([&, t] {
                    go.arrive_and_wait();
                    results[t] = store.insert(event(k));
                });
            for (auto& t : threads)
                t.join();
            int stored = 0;
            std::set<std::string> ids;
            for (const auto& r : results) {
                stored += r.status == InsertStatus::stored;
                CHECK((r.status == InsertStatus::stored || r.status == InsertStatus::duplicate));
                ids.insert(r.id);
            }
            INFO("round " << round << (paused ? " (indexer paused)" : " (indexer running)"));
            CHECK(stored == 1);
            CHECK(ids.size() == 1);
        }
    }
    REQUIRE(journal_of(store).drain());
    CHECK(rows_in_tables(cfg.path) == 40);
}

TEST_CASE("journal: a kill before indexing loses nothing, the restart indexes and deletes segments",
          "[journal]") {
    test::TempDir dir;
    StoreConfig cfg = journal_config(dir);
    std::vector<std::string> ids;
    {
        SqliteStore store(cfg, 64);
        journal_of(store).pause_indexer(true);
        for (int i = 0; i < 50; ++i) {
            auto r = store.insert(event("k" + std::to_string(i)));
            REQUIRE(r.status == InsertStatus::stored);
            ids.push_back(r.id);
        }
        journal_of(store).abandon();  // as SIGKILL leaves it: nothing more indexed
    }
    CHECK(rows_in_tables(cfg.path) == 0);
    REQUIRE(segments(cfg.path).size() == 1);

    SqliteStore again(cfg, 64);
    REQUIRE(journal_of(again).drain());
    CHECK(journal_of(again).stats().recovered == 50);
    CHECK(rows_in_tables(cfg.path) == 50);
    for (const auto& id : ids)
        CHECK(rows_in_tables(cfg.path, "id = '" + id + "'") == 1);
    // The same deliveries again are duplicates with their first ids.
    for (int i = 0; i < 50; ++i) {
        auto r = again.insert(event("k" + std::to_string(i)));
        CHECK(r.status == InsertStatus::duplicate);
        CHECK(r.id == ids[static_cast<size_t>(i)]);
    }
    // Once everything is indexed no segment but the open one stays.
    CHECK(segments(cfg.path).size() <= 1);
}

TEST_CASE("journal: a torn tail is cut at start, the whole records before it are indexed",
          "[journal]") {
    test::TempDir dir;
    StoreConfig cfg = journal_config(dir);
    std::string last_id;
    {
        SqliteStore store(cfg, 64);
        journal_of(store).pause_indexer(true);
        for (int i = 0; i < 10; ++i)
            last_id = store.insert(event("t" + std::to_string(i))).id;
        journal_of(store).abandon();
    }
    const auto segs = segments(cfg.path);
    REQUIRE(segs.size() == 1);
    // The whole records' end (the end marker follows).
    size_t whole = 0;
    {
        std::ifstream in(segs[0], std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
        const auto scan = journal::scan_segment(bytes);
        REQUIRE(scan.records.size() == 10);
        whole = scan.valid_bytes;
    }
    // Half of an 11th record right after them, as a crash in the middle of a
    // write leaves it.
    journal::Record half;
    half.seq = 11;
    half.id = "evt_torn";
    half.source = "clay";
    half.key = "t10";
    half.body = std::string(400, 'x');
    std::string enc;
    REQUIRE(journal::encode(half, enc));
    {
        std::fstream out(segs[0], std::ios::binary | std::ios::in | std::ios::out);
        out.seekp(static_cast<std::streamoff>(whole));
        out.write(enc.data(), static_cast<std::streamsize>(enc.size() / 2));
        REQUIRE(out.good());
    }
    SqliteStore::Tuning tuning;
    tuning.journal_start_paused = true;  // the segment stays while we look
    SqliteStore again(cfg, 64, tuning);
    CHECK(fs::file_size(segs[0]) == whole);  // cut right after the whole records
    journal_of(again).pause_indexer(false);
    REQUIRE(journal_of(again).drain());
    CHECK(rows_in_tables(cfg.path) == 10);
    CHECK(rows_in_tables(cfg.path, "id = 'evt_torn'") == 0);
    CHECK(rows_in_tables(cfg.path, "id = '" + last_id + "'") == 1);
    // The torn delivery was never acknowledged: its retry is stored anew.
    CHECK(again.insert(event("t10")).status == InsertStatus::stored);
}

TEST_CASE("journal: a full backlog answers overloaded, and takes again once indexed", "[journal]") {
    test::TempDir dir;
    SqliteStore::Tuning tuning;
    tuning.journal_max_backlog = 5;
    SqliteStore store(journal_config(dir), 64, tuning);
    journal_of(store).pause_indexer(true);
    for (int i = 0; i < 5; ++i)
        REQUIRE(store.insert(event("b" + std::to_string(i))).status == InsertStatus::stored);
    const auto full = store.insert(event("b5"));
    CHECK(full.status == InsertStatus::overloaded);
    CHECK_THAT(full.error, Catch::Contains("backlog"));
    journal_of(store).pause_indexer(false);
    REQUIRE(journal_of(store).drain());
    CHECK(store.insert(event("b5")).status == InsertStatus::stored);
}

TEST_CASE("journal: segments roll past their size and are deleted once indexed", "[journal]") {
    test::TempDir dir;
    SqliteStore::Tuning tuning;
    tuning.journal_segment_bytes = 4096;
    const StoreConfig cfg = journal_config(dir);
    auto store_ptr = std::make_unique<SqliteStore>(cfg, 64, tuning);
    SqliteStore& store = *store_ptr;
    journal_of(store).pause_indexer(true);
    const std::string body(1000, 'b');
    for (int i = 0; i < 20; ++i)
        REQUIRE(store.insert(event("s" + std::to_string(i), body)).status == InsertStatus::stored);
    CHECK(segments(cfg.path).size() >= 4);
    journal_of(store).pause_indexer(false);
    REQUIRE(journal_of(store).drain());
    CHECK(rows_in_tables(cfg.path) == 20);
    CHECK(segments(cfg.path).size() <= 1);
    // A clean stop leaves no segment at all, nor a spare.
    store_ptr.reset();
    CHECK(journal_files(cfg.path).empty());
}

TEST_CASE("journal: the next segment is prepared in advance and written over in place",
          "[journal]") {
    test::TempDir dir;
    SqliteStore::Tuning tuning;
    tuning.journal_segment_bytes = 64 * 1024;
    const StoreConfig cfg = journal_config(dir);
    const std::string spare = cfg.path + ".journal/spare.seg";
    const std::string body(1000, 'p');
    int n = 0;
    {
        SqliteStore store(cfg, 64, tuning);
        journal_of(store).pause_indexer(true);
        // The first segment is created; past half of it the spare is made.
        while (!fs::exists(spare)) {
            REQUIRE(store.insert(event("p" + std::to_string(n++), body)).status ==
                    InsertStatus::stored);
            REQUIRE(n < 60);  // half of 64 KiB is about 30 records of 1 KB
            if (n > 40) REQUIRE(test::wait_until([&] { return fs::exists(spare); }, 10s));
        }
        CHECK(fs::file_size(spare) == 64 * 1024);
        // Fill the first segment: the second one is the spare, renamed.
        const size_t first_segments = segments(cfg.path).size();
        while (segments(cfg.path).size() == first_segments)
            REQUIRE(store.insert(event("p" + std::to_string(n++), body)).status ==
                    InsertStatus::stored);
        CHECK(!fs::exists(spare));
        const auto second = segments(cfg.path).back();
        CHECK(fs::file_size(second) == 64 * 1024);  // written over, not appended to
        std::ifstream in(second, std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
        const auto scan = journal::scan_segment(bytes);
        REQUIRE(scan.records.size() >= 1);
        // The records, the end marker, then the zeros written in advance.
        CHECK(journal::is_end_marker(std::string_view(bytes).substr(scan.valid_bytes),
                                     scan.records.back().seq + 1));
        CHECK(bytes.find_first_not_of('\0', scan.valid_bytes + journal::kHeaderSize) ==
              std::string::npos);
        journal_of(store).abandon();  // as a kill leaves it: nothing indexed
    }
    // At start the zeros after the last record are no torn tail: the
    // segment is not cut, and every record is indexed.
    const auto second = segments(cfg.path).back();
    tuning.journal_start_paused = true;  // the segments stay while we look
    SqliteStore again(cfg, 64, tuning);
    CHECK(!fs::exists(spare));  // a spare left by a kill is deleted, not trusted
    REQUIRE(fs::exists(second));
    CHECK(fs::file_size(second) == 64 * 1024);
    journal_of(again).pause_indexer(false);
    REQUIRE(journal_of(again).drain());
    CHECK(rows_in_tables(cfg.path) == n);
}

namespace {

// The store's role as the journal sees it, in memory, recording when the
// journal asks for the indexed records to be made durable.
class RecordingIndex final : public journal::Index {
  public:
    explicit RecordingIndex(std::string dir) : dir_(std::move(dir)) {}
    uint64_t indexed_upto() override { return upto_; }
    uint64_t key_hash(std::string_view source, std::string_view key) const override {
        return std::hash<std::string>{}(std::string(source) + '\0' + std::string(key));
    }
    std::optional<std::string> find_stored(std::string_view, std::string_view, uint64_t) override {
        return std::nullopt;
    }
    void index(const std::vector<const journal::Record*>& records,
               const std::vector<uint64_t>& hashes, uint64_t upto) override {
        REQUIRE(hashes.size() == records.size());
        for (size_t i = 0; i < records.size(); ++i)
            CHECK(hashes[i] == key_hash(records[i]->source, records[i]->key));
        std::lock_guard lk(mu);
        if (fail_index) throw std::runtime_error("injected: the database is gone");
        indexed += records.size();
        batches.push_back(records.size());
        upto_ = upto;
    }
    void sync_indexed() override {
        std::lock_guard lk(mu);
        ++syncs;
        if (fail_sync) throw std::runtime_error("injected: fsync failed");
    }
    std::mutex mu;
    size_t indexed = 0, syncs = 0;
    std::vector<size_t> batches;  // records per index() call
    size_t count() {
        std::lock_guard lk(mu);
        return indexed;
    }
    bool fail_sync = false;
    bool fail_index = false;  // under mu

  private:
    std::string dir_;
    std::atomic<uint64_t> upto_{0};
};

// What a journal said through Options::warn, from any of its threads.
struct Said {
    std::function<void(const std::string&)> hook() {
        return [this](const std::string& w) {
            std::lock_guard lk(mu);
            lines.push_back(w);
        };
    }
    std::vector<std::string> all() {
        std::lock_guard lk(mu);
        return lines;
    }
    void clear() {
        std::lock_guard lk(mu);
        lines.clear();
    }

  private:
    std::mutex mu;
    std::vector<std::string> lines;
};

// Options over `dir` that roll a segment every few records of 1 KB.
journal::Options rolling_options(const std::string& dir, Said& said) {
    journal::Options o;
    o.dir = dir;
    o.segment_bytes = 4096;
    o.warn = said.hook();
    return o;
}

size_t segment_files(const std::string& dir) {
    size_t n = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
        n += e.path().filename().string().rfind("seg-", 0) == 0 ? 1 : 0;
    return n;
}

}  // namespace

TEST_CASE("journal: a segment is deleted only once its indexed records are synced", "[journal]") {
    test::TempDir tmp;
    const std::string dir = tmp.file("j");
    RecordingIndex index(dir);
    Said said;
    journal::Options o = rolling_options(dir, said);
    index.fail_sync = true;
    journal::Journal j(o, index);
    const std::string body(1000, 'd');
    for (int i = 0; i < 20; ++i)
        REQUIRE(j.append(event("d" + std::to_string(i), body)).status == InsertStatus::stored);
    REQUIRE(j.drain());
    {
        std::lock_guard lk(index.mu);
        CHECK(index.indexed == 20);
        CHECK(index.syncs >= 1);
    }
    // Indexed, but not durably: every segment stays, and the reason is said.
    CHECK(segment_files(dir) >= 4);
    {
        const auto lines = said.all();
        REQUIRE(!lines.empty());
        CHECK_THAT(lines.back(), Catch::Contains("cannot sync the indexed records") &&
                                     Catch::Contains("injected: fsync failed"));
    }
    {
        std::lock_guard lk(index.mu);
        index.fail_sync = false;
    }
    REQUIRE(j.append(event("d20", body)).status == InsertStatus::stored);
    REQUIRE(j.drain());
    CHECK(segment_files(dir) <= 1);  // synced, then deleted; the open one stays
}

TEST_CASE("journal: the store reports the syncs, their time and the slow ones", "[journal]") {
    test::TempDir dir;
    SqliteStore store(journal_config(dir), 64);
    for (int i = 0; i < 50; ++i)
        REQUIRE(store.insert(event("sync-" + std::to_string(i))).status == InsertStatus::stored);
    const Store::Usage u = store.usage();
    const journal::Journal::Stats js = journal_of(store).stats();
    CHECK(u.journal_syncs >= 1);  // one insert at a time: a sync each, at most 50
    CHECK(u.journal_syncs <= 50);
    CHECK(u.journal_sync_us > 0);  // fdatasync is never free
    CHECK(u.journal_sync_us == static_cast<int64_t>(js.sync_us));
    // Over 1 ms, 5 ms, 20 ms: each set holds the next.
    CHECK(u.journal_slow_syncs[0] <= u.journal_syncs);
    CHECK(u.journal_slow_syncs[1] <= u.journal_slow_syncs[0]);
    CHECK(u.journal_slow_syncs[2] <= u.journal_slow_syncs[1]);
    CHECK(u.journal_slow_syncs[2] >= 0);
    // Without a journal: not reported.
    test::TempDir plain;
    StoreConfig direct = journal_config(plain);
    direct.journal = false;
    SqliteStore no_journal(direct, 64);
    CHECK(no_journal.usage().journal_sync_us == -1);
    CHECK(no_journal.usage().journal_slow_syncs[0] == -1);
}

namespace {

// A journal over a RecordingIndex whose indexer waits up to a minute to fill
// a batch under load (what a wait would cost, in these tests), started
// paused, with an append of `n` small records at a time.
struct BatchingRig {
    test::TempDir tmp;
    RecordingIndex index{tmp.file("j")};
    std::unique_ptr<journal::Journal> j;
    int next = 0;
    explicit BatchingRig(const std::function<void(journal::Options&)>& tune) {
        journal::Options o;
        o.dir = tmp.file("j");
        o.durable = false;
        o.index_max_wait = std::chrono::minutes(1);
        o.start_paused = true;
        tune(o);
        j = std::make_unique<journal::Journal>(o, index);
    }
    void append(int n) {
        const std::string body(100, 'b');
        for (int i = 0; i < n; ++i)
            REQUIRE(j->append(event("l" + std::to_string(next++), body)).status ==
                    InsertStatus::stored);
    }
    bool indexed(size_t n) {
        return test::wait_until([&] { return index.count() == n; }, 10s);
    }
};

}  // namespace

TEST_CASE("journal: under load the indexer waits to fill a batch, a light load goes at once",
          "[journal]") {
    BatchingRig r([](journal::Options& o) { o.index_min_batch = 1000; });
    // A light load: indexed at once, not after the minute.
    r.append(1);
    r.j->pause_indexer(false);
    REQUIRE(r.indexed(1));
    // A load: 300 records piled up go in one transaction...
    r.j->pause_indexer(true);
    r.append(300);
    r.j->pause_indexer(false);
    REQUIRE(r.indexed(301));
    // ...after which the indexer lets the next batch fill (a bounded look:
    // nothing of it is indexed meanwhile)...
    r.append(10);
    CHECK_FALSE(test::wait_until([&] { return r.index.count() > 301; }, 300ms));
    // ...and indexes it whole once it is full...
    r.append(990);
    REQUIRE(r.indexed(1301));
    {
        std::lock_guard lk(r.index.mu);
        CHECK(r.index.batches.back() == 1000);
    }
    // ...or as soon as someone drains the journal.
    r.append(5);
    const auto t0 = std::chrono::steady_clock::now();
    REQUIRE(r.j->drain(30s));
    CHECK(std::chrono::steady_clock::now() - t0 < 20s);
    CHECK(r.index.count() == 1306);
}

TEST_CASE("journal: the batch the indexer waits for never exceeds half the backlog's bound",
          "[journal]") {
    // Appends past 600 get 503: a batch of 16,384 could never fill.
    BatchingRig r([](journal::Options& o) { o.max_backlog = 600; });
    r.append(400);  // a load: one transaction of 400
    r.j->pause_indexer(false);
    REQUIRE(r.indexed(400));
    // Half the bound is there: indexed without the minute's wait.
    r.append(300);
    REQUIRE(r.indexed(700));
}

TEST_CASE("journal: the key map is sized for the backlog's bound, never rehashed as it fills",
          "[journal]") {
    // A rehash runs under the journal's lock, which every append takes:
    // growing past 172,933 keys took 7 ms here, with the intake waiting.
    BatchingRig r([](journal::Options& o) { o.max_backlog = 5000; });
    const size_t buckets = r.j->key_buckets();
    CHECK(buckets >= 5000);
    r.append(5000);  // the indexer is paused: every key is held
    CHECK(r.j->key_buckets() == buckets);
}

TEST_CASE("journal: a segment all indexed is reused as a later one, and a kill then loses nothing",
          "[journal]") {
    test::TempDir tmp;
    const std::string dir = tmp.file("j");
    RecordingIndex index(dir);
    Said said;
    const journal::Options o = rolling_options(dir, said);
    // Four records of about 1 KB fill a segment past 15/16 of its 4 KiB:
    // appended segments are reused too, not only those written in advance.
    const std::string body(900, 'u');
    auto key = [](int i) { return "u" + std::to_string(1000 + i); };
    auto read = [](const fs::path& p) {
        std::ifstream in(p, std::ios::binary);
        return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    };
    std::set<std::string> seen;  // segment names
    std::string reused;          // a segment written over an earlier one's records
    int n = 0;
    {
        journal::Journal j(o, index);
        for (; reused.empty(); ++n) {
            REQUIRE(n < 200);
            REQUIRE(j.append(event(key(n), body)).status == InsertStatus::stored);
            REQUIRE(j.drain());  // indexed: the closed segments are offered as the spare
            for (const auto& e : fs::directory_iterator(dir)) {
                const std::string name = e.path().filename().string();
                if (!journal::segment_first_seq(name) || !seen.insert(name).second) continue;
                // New, with one record and its end marker: a fresh file
                // holds zeros or nothing after them, a reused one the
                // earlier use's records.
                const std::string bytes = read(e.path());
                const auto scan = journal::scan_segment(bytes, *journal::segment_first_seq(name));
                REQUIRE(scan.records.size() == 1);
                REQUIRE(journal::is_end_marker(std::string_view(bytes).substr(scan.valid_bytes),
                                               scan.records[0].seq + 1));
                if (bytes.find_first_not_of('\0', scan.valid_bytes + journal::kHeaderSize) !=
                    std::string::npos)
                    reused = name;
            }
        }
        // An appended segment is the first one reused (whichever of them:
        // that depends on when the spare with zeros got ready), not one
        // written in advance, which has the full size.
        CHECK(fs::file_size(dir + "/" + reused) < o.segment_bytes);
        // One more record, shorter, so that the earlier use's bytes after it
        // start mid-record; never indexed; then a kill.
        j.pause_indexer(true);
        REQUIRE(j.append(event(key(n++), "short")).status == InsertStatus::stored);
        j.abandon();
    }
    {
        const std::string bytes = read(dir + "/" + reused);
        const auto scan = journal::scan_segment(bytes, *journal::segment_first_seq(reused));
        REQUIRE(scan.records.size() == 2);
        // The pass's end marker, then what the earlier use left.
        CHECK(journal::is_end_marker(std::string_view(bytes).substr(scan.valid_bytes),
                                     scan.records[1].seq + 1));
        CHECK(bytes.find_first_not_of('\0', scan.valid_bytes + journal::kHeaderSize) !=
              std::string::npos);
    }
    {
        std::lock_guard lk(index.mu);
        CHECK(index.indexed == static_cast<size_t>(n - 1));  // all but the last
    }
    said.clear();
    journal::Journal again(o, index);
    REQUIRE(again.drain());
    CHECK(again.stats().recovered == 1);
    {
        // Every acknowledged record indexed once: the last one now, and none
        // of the earlier use's records the reused file still holds.
        std::lock_guard lk(index.mu);
        CHECK(index.indexed == static_cast<size_t>(n));
    }
    {
        // The marker ended the segment: no torn tail said, nothing cut.
        for (const auto& w : said.all())
            CHECK_THAT(w, !Catch::Contains("torn") && !Catch::Contains("out of order"));
    }
    // A segment found at start is deleted once indexed, never reused: seqs
    // only grow within a run, and what a file holds from an earlier run's
    // use could not be told from this run's records by them.
    CHECK(!fs::exists(dir + "/" + reused));
    CHECK(!fs::exists(dir + "/spare.seg"));
}

namespace {

// Records first..last, each one's offset in `offsets`.
std::string records(uint64_t first, uint64_t last, std::vector<size_t>* offsets = nullptr) {
    std::string seg;
    for (uint64_t s = first; s <= last; ++s) {
        if (offsets != nullptr) offsets->push_back(seg.size());
        REQUIRE(journal::encode(
            small_record(s, "evt_" + std::to_string(s), "z" + std::to_string(s)), seg));
    }
    return seg;
}

void garble(std::string& seg, size_t record_at) {
    seg[record_at + journal::kHeaderSize + 3] ^= 0x40;  // its CRC fails
}

}  // namespace

TEST_CASE(
    "journal: bad data in the last segment with whole records after it: they are read, "
    "the file kept as found, and the gap said as a power cut or damage",
    "[journal]") {
    // A power cut can leave a hole inside the last pass (its pages reach the
    // disk in any order), so in the last segment a gap is not surely a loss.
    test::TempDir tmp;
    const std::string dir = tmp.file("j");
    fs::create_directories(dir);
    std::vector<size_t> at;
    std::string seg = records(1, 6, &at);
    const std::string path = dir + "/" + journal::segment_name(1);
    const auto damage = GENERATE(as<std::string>{}, "zeros", "garbled");
    INFO("damage: " << damage);
    const bool zeros = damage == std::string("zeros");
    uint64_t recovered = 0;
    if (zeros) {
        // 20 zero bytes where record 4's header should be, record 4 after them.
        seg.insert(at[3], std::string(journal::kHeaderSize, '\0'));
        recovered = 6;
    } else {
        garble(seg, at[2]);
        garble(seg, at[4]);
        recovered = 4;
    }
    std::ofstream(path, std::ios::binary) << seg;

    RecordingIndex index(dir);
    Said said;
    journal::Options o = rolling_options(dir, said);
    o.start_paused = true;  // the segment stays while we look
    {
        journal::Journal j(o, index);
        CHECK(j.stats().recovered == recovered);
        CHECK(fs::file_size(path) == seg.size());  // nothing cut
        const auto lines = said.all();
        INFO("said: " << Catch::Detail::stringify(lines));
        if (zeros) {
            // Nothing missing: nothing to keep a copy for.
            REQUIRE(lines.size() == 1);
            CHECK_THAT(lines[0], Catch::Contains("bad data (bad magic at offset " +
                                                 std::to_string(at[3]) + ")") &&
                                     Catch::Contains("no record is missing") &&
                                     Catch::Contains("the records from 4 on"));
            CHECK(!fs::exists(path + ".damaged"));
        } else {
            REQUIRE(lines.size() == 2);
            CHECK_THAT(lines[0],
                       Catch::Contains("bad data (bad checksum at offset " + std::to_string(at[2]) +
                                       ")") &&
                           Catch::Contains("records 3 to 3 cannot be read: acknowledged "
                                           "deliveries lost to damage, unless they were in a "
                                           "write that never finished") &&
                           Catch::Contains("the records from 4 on"));
            // The second spot's offset is the file's, not the rescan's.
            CHECK_THAT(lines[1],
                       Catch::Contains("(bad checksum at offset " + std::to_string(at[4]) + ")") &&
                           Catch::Contains("records 5 to 5 cannot be read") &&
                           Catch::Contains("the records from 6 on") &&
                           Catch::Contains("the file as found is kept as " + path + ".damaged"));
            REQUIRE(fs::exists(path + ".damaged"));
            CHECK(test::read_file(path + ".damaged") == seg);
            CHECK(fs::status(path + ".damaged").permissions() ==
                  (fs::perms::owner_read | fs::perms::owner_write));
        }
        j.abandon();  // killed again before indexing
    }
    if (!zeros) {
        // A second start keeps the first copy, and says so.
        std::ofstream(path, std::ios::binary | std::ios::app) << "torn";
        said.clear();
    }
    journal::Journal again(o, index);
    if (!zeros) {
        CHECK(test::read_file(path + ".damaged") == seg);
        const auto lines = said.all();
        INFO("said: " << Catch::Detail::stringify(lines));
        REQUIRE(lines.size() >= 2);
        CHECK_THAT(lines[1], Catch::Contains("was kept as " + path + ".damaged before"));
    }
    again.pause_indexer(false);
    REQUIRE(again.drain());
    CHECK(index.count() == recovered);
}

TEST_CASE("journal: bad data in a segment a later one follows: said, kept, the bad end cut",
          "[journal]") {
    test::TempDir tmp;
    const std::string dir = tmp.file("j");
    fs::create_directories(dir);
    std::vector<size_t> at;
    std::string first = records(1, 8, &at);
    const std::string p1 = dir + "/" + journal::segment_name(1);
    const std::string p2 = dir + "/" + journal::segment_name(9);
    const auto where = GENERATE(as<std::string>{}, "middle", "end", "not durable");
    INFO("where: " << where);
    const bool end = where == std::string("end");
    size_t cut_to = first.size();
    if (end) {
        garble(first, at[7]);  // record 8: no whole record after it
        cut_to = at[7];
    } else {
        garble(first, at[2]);  // record 3; 4..8 read
    }
    std::ofstream(p1, std::ios::binary) << first;
    std::ofstream(p2, std::ios::binary) << records(9, 10);

    RecordingIndex index(dir);
    Said said;
    journal::Options o = rolling_options(dir, said);
    o.start_paused = true;
    o.durable = where != std::string("not durable");
    journal::Journal j(o, index);
    const auto lines = said.all();
    INFO("said: " << Catch::Detail::stringify(lines));
    REQUIRE(lines.size() == 1);
    CHECK(fs::file_size(p1) == cut_to);
    CHECK(j.stats().recovered == 9);
    CHECK_THAT(lines[0],
               Catch::Contains(std::string(end ? "records 8 to 8" : "records 3 to 3") +
                               " cannot be read: acknowledged deliveries lost") &&
                   Catch::Contains(end ? "the rest of the file is cut" : "the records from 4 on") &&
                   Catch::Contains("kept as " + p1 + ".damaged"));
    if (!o.durable)
        CHECK_THAT(lines[0], Catch::Contains("(durable: false: a power cut or damage)"));
    REQUIRE(fs::exists(p1 + ".damaged"));
    CHECK(fs::file_size(p1 + ".damaged") == first.size());
}

TEST_CASE("journal: a bad record with only an earlier use's records after it is a torn tail",
          "[journal]") {
    // Whole records numbered below the file's first are an earlier use's:
    // passed over when looking for records after a bad spot, so the tail is
    // cut as a torn pass, with no copy.
    test::TempDir tmp;
    const std::string dir = tmp.file("j");
    fs::create_directories(dir);
    std::string seg;
    for (uint64_t s = 10; s <= 12; ++s)
        REQUIRE(journal::encode(small_record(s, "evt_" + std::to_string(s), "k"), seg));
    const size_t whole = seg.size();
    std::string torn;
    REQUIRE(journal::encode(small_record(13, "evt_13", "k13"), torn));
    seg += torn.substr(0, torn.size() / 2);
    for (uint64_t s = 3; s <= 4; ++s)  // the earlier use's, past the torn one
        REQUIRE(journal::encode(small_record(s, "evt_" + std::to_string(s), "old"), seg));
    const std::string path = dir + "/" + journal::segment_name(10);
    std::ofstream(path, std::ios::binary) << seg;

    RecordingIndex index(dir);
    Said said;
    journal::Options o = rolling_options(dir, said);
    o.start_paused = true;
    journal::Journal j(o, index);
    CHECK(j.stats().recovered == 3);
    CHECK(fs::file_size(path) == whole);
    CHECK(!fs::exists(path + ".damaged"));
    const auto lines = said.all();
    REQUIRE(lines.size() == 1);
    CHECK_THAT(lines[0], Catch::Contains("cut") && Catch::Contains("torn tail"));
}

TEST_CASE("journal: an empty segment left by a kill goes at once, never the one in use",
          "[journal]") {
    // A spare renamed in as the next segment just before a kill: zeros only,
    // under the name the next segment will take again.
    test::TempDir tmp;
    const std::string dir = tmp.file("j");
    fs::create_directories(dir);
    const std::string seg1 = dir + "/seg-0000000000000001.log";
    std::ofstream(seg1, std::ios::binary) << std::string(4096, '\0');
    RecordingIndex index(dir);
    index.fail_sync = true;  // even so: a segment without records needs no sync
    journal::Options o;
    o.dir = dir;
    o.preallocate = false;
    journal::Journal j(o, index);
    CHECK(!fs::exists(seg1));

    REQUIRE(j.append(event("e1")).status == InsertStatus::stored);  // seg1 anew
    REQUIRE(j.drain());
    {
        std::lock_guard lk(index.mu);
        index.fail_sync = false;
    }
    REQUIRE(j.append(event("e2")).status == InsertStatus::stored);
    REQUIRE(j.drain());  // indexed, synced: only closed segments may go
    REQUIRE(j.append(event("e3")).status == InsertStatus::stored);
    REQUIRE(fs::exists(seg1));
    std::ifstream in(seg1, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(journal::scan_segment(bytes).records.size() == 3);
}

TEST_CASE("journal: syncing the tables before a segment goes keeps SQLite's locks", "[journal]") {
    // Closing any descriptor of the database file drops every POSIX lock the
    // process holds on it. Another process's connection closing beside the
    // host (here `clayhook backup`, which opens the live file read-write)
    // would then think itself the last one, and delete the live WAL.
    test::TempDir dir;
    SqliteStore::Tuning tuning;
    tuning.journal_segment_bytes = 4096;
    const StoreConfig cfg = journal_config(dir);
    SqliteStore store(cfg, 64, tuning);
    const std::string body(1000, 'l');
    for (int i = 0; i < 20; ++i)
        REQUIRE(store.insert(event("l" + std::to_string(i), body)).status == InsertStatus::stored);
    REQUIRE(journal_of(store).drain());
    REQUIRE(segments(cfg.path).size() <= 1);  // indexed, synced, deleted
    REQUIRE(fs::exists(cfg.path + "-wal"));

    const std::string config = test::journal_store_config(dir, cfg.path);
    const auto backup =
        test::run({test::kClayhookBin, "backup", "--config", config, dir.file("copy.db")}, {});
    INFO(backup.out << backup.err);
    REQUIRE(backup.code == 0);
    CHECK(fs::exists(cfg.path + "-wal"));
    REQUIRE(store.insert(event("l20", body)).status == InsertStatus::stored);
    REQUIRE(journal_of(store).drain());
    CHECK(fs::exists(cfg.path + "-wal"));
    CHECK(rows_in_tables(cfg.path) == 21);
}

TEST_CASE("journal: copies of one key recovered into one index transaction are stored once",
          "[journal]") {
    test::TempDir dir;
    StoreConfig cfg = journal_config(dir);
    {
        SqliteStore store(cfg, 64);  // creates the tables and the folder
    }
    // A segment holding three records of one key, each with an id of its
    // own, between others: the indexer takes them in one transaction.
    write_segment(cfg.path, 1, {"k1", "k2", "k1", "k3", "k1"}, "evt_copy_");
    SqliteStore store(cfg, 64);
    REQUIRE(journal_of(store).drain());
    CHECK(rows_in_tables(cfg.path) == 3);
    CHECK(store.get("evt_copy_1").has_value());  // the first of the copies
    CHECK(store.get("evt_copy_2").has_value());
    CHECK_FALSE(store.get("evt_copy_3").has_value());
    CHECK(store.get("evt_copy_4").has_value());
    CHECK_FALSE(store.get("evt_copy_5").has_value());
    CHECK(ids_in_seq_order(cfg.path) ==
          std::vector<std::string>{"evt_copy_1", "evt_copy_2", "evt_copy_4"});
    const auto again = store.insert(event("k1"));
    CHECK(again.status == InsertStatus::duplicate);
    CHECK(again.id == "evt_copy_1");
}

TEST_CASE(
    "journal: indexing keeps insert()'s rules for a dedup row leading to another key or to "
    "nothing",
    "[journal]") {
    test::TempDir dir;
    StoreConfig cfg = journal_config(dir);
    SqliteStore store(cfg, 64);
    const auto a = store.insert(event("a"));
    const auto b = store.insert(event("b"));
    const auto c = store.insert(event("c"));
    REQUIRE(c.status == InsertStatus::stored);
    REQUIRE(journal_of(store).drain());

    // Tamper from outside, as a hash collision or a retention job would
    // leave things: a's row now leads to b's event, c's event is gone.
    sqlite3* other = nullptr;
    REQUIRE(sqlite3_open(cfg.path.c_str(), &other) == SQLITE_OK);
    const std::string sql = "UPDATE dedup SET event_seq = (SELECT seq FROM events WHERE id = '" +
                            b.id + "') WHERE event_seq = (SELECT seq FROM events WHERE id = '" +
                            a.id + "'); DELETE FROM events WHERE id = '" + c.id + "';";
    REQUIRE(sqlite3_exec(other, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(other);

    // Both new, and indexed in one transaction.
    journal_of(store).pause_indexer(true);
    const auto a2 = store.insert(event("a"));
    const auto c2 = store.insert(event("c"));
    CHECK(a2.status == InsertStatus::stored);
    CHECK(c2.status == InsertStatus::stored);
    journal_of(store).pause_indexer(false);
    REQUIRE(journal_of(store).drain());
    CHECK(rows_in_tables(cfg.path) == 4);  // a, b, a2, c2
    // a: the row still leads to b's event (b's own row and a's), so b stays
    // deduplicated.
    {
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open_v2(cfg.path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
        sqlite3_stmt* q = nullptr;
        const std::string count =
            "SELECT count(*) FROM dedup WHERE event_seq ="
            " (SELECT seq FROM events WHERE id = '" +
            b.id + "')";
        REQUIRE(sqlite3_prepare_v2(db, count.c_str(), -1, &q, nullptr) == SQLITE_OK);
        REQUIRE(sqlite3_step(q) == SQLITE_ROW);
        CHECK(sqlite3_column_int64(q, 0) == 2);
        sqlite3_finalize(q);
        sqlite3_close(db);
    }
    const auto b2 = store.insert(event("b"));
    CHECK(b2.status == InsertStatus::duplicate);
    CHECK(b2.id == b.id);
    // c: the row now leads to c2's event, answered from the tables.
    const auto c3 = store.insert(event("c"));
    CHECK(c3.status == InsertStatus::duplicate);
    CHECK(c3.id == c2.id);
}

TEST_CASE(
    "journal: copies recovered into one transaction follow insert()'s rules against the "
    "dedup rows already there",
    "[journal]") {
    test::TempDir dir;
    StoreConfig cfg = journal_config(dir);
    std::string b_id, d_id;
    {
        SqliteStore store(cfg, 64);
        REQUIRE(store.insert(event("a")).status == InsertStatus::stored);
        b_id = store.insert(event("b")).id;
        REQUIRE(store.insert(event("c")).status == InsertStatus::stored);
        d_id = store.insert(event("d")).id;
        REQUIRE(journal_of(store).drain());
    }
    // As a hash collision or a retention job would leave things: a's row
    // leads to b's event, c's event is gone.
    tamper(cfg.path,
           "UPDATE dedup SET event_seq = (SELECT seq FROM events WHERE id = '" + b_id +
               "') WHERE event_seq = (SELECT seq FROM events WHERE idempotency_key = 'a');"
               " DELETE FROM events WHERE idempotency_key = 'c';");
    // Two copies of each key, in one segment past the indexed position (4).
    write_segment(cfg.path, 5, {"a", "c", "a", "c", "d", "d"}, "evt_again_");
    SqliteStore store(cfg, 64);
    REQUIRE(journal_of(store).drain());
    // a: its row leads to another key's event, so neither copy is its
    // duplicate and the row stays (insert() does the same).
    CHECK(store.get("evt_again_5").has_value());
    CHECK(store.get("evt_again_7").has_value());
    CHECK(store.insert(event("b")).id == b_id);
    // c: its row led nowhere; the first copy takes it, the second is its
    // duplicate.
    CHECK(store.get("evt_again_6").has_value());
    CHECK_FALSE(store.get("evt_again_8").has_value());
    CHECK(store.insert(event("c")).id == "evt_again_6");
    // d: stored already, both copies are duplicates.
    CHECK_FALSE(store.get("evt_again_9").has_value());
    CHECK_FALSE(store.get("evt_again_10").has_value());
    CHECK(store.insert(event("d")).id == d_id);
    // In arrival order after a, b and d (c was deleted).
    const auto ids = ids_in_seq_order(cfg.path);
    REQUIRE(ids.size() == 6);
    CHECK(ids[1] == b_id);
    CHECK(ids[2] == d_id);
    CHECK(std::vector<std::string>(ids.begin() + 3, ids.end()) ==
          std::vector<std::string>{"evt_again_5", "evt_again_6", "evt_again_7"});
}

TEST_CASE("journal: records recovered across a gap in seqs still answer dedup from memory",
          "[journal]") {
    test::TempDir dir;
    StoreConfig cfg = journal_config(dir);
    std::vector<std::string> ids;
    {
        SqliteStore store(cfg, 64);  // creates the tables and the folder
    }
    // Two segments with a gap between them, as a failed sync whose records
    // never reached the disk leaves them: seqs 1-3, then 7-9.
    for (uint64_t first : {1, 7}) {
        std::string seg;
        for (uint64_t s = first; s < first + 3; ++s)
            REQUIRE(journal::encode(
                small_record(s, "evt_gap_" + std::to_string(s), "gap" + std::to_string(s)), seg));
        char name[40];
        std::snprintf(name, sizeof name, "seg-%016llx.log", static_cast<unsigned long long>(first));
        std::ofstream(cfg.path + ".journal/" + name, std::ios::binary) << seg;
    }
    SqliteStore::Tuning tuning;
    tuning.journal_start_paused = true;
    SqliteStore store(cfg, 64, tuning);
    CHECK(journal_of(store).stats().recovered == 6);
    for (uint64_t s : {1, 3, 7, 9}) {
        auto r = store.insert(event("gap" + std::to_string(s)));
        INFO("seq " << s);
        CHECK(r.status == InsertStatus::duplicate);
        CHECK(r.id == "evt_gap_" + std::to_string(s));
    }
    journal_of(store).pause_indexer(false);
    REQUIRE(journal_of(store).drain());
    CHECK(rows_in_tables(cfg.path) == 6);
}

namespace {

// What append_async() callbacks got, by name: each result, how often each was
// called and on which thread.
struct AsyncAnswers {
    IntakeWriter::InsertDone done(const std::string& name) {
        return [this, name](InsertResult r) {
            std::lock_guard lk(mu);
            results[name] = std::move(r);
            ++calls[name];
            threads[name] = std::this_thread::get_id();
        };
    }
    size_t answered() {
        std::lock_guard lk(mu);
        return calls.size();
    }
    InsertResult result(const std::string& name) {
        std::lock_guard lk(mu);
        return results[name];
    }
    std::mutex mu;
    std::map<std::string, InsertResult> results;
    std::map<std::string, int> calls;
    std::map<std::string, std::thread::id> threads;
};

// The journal's next segment as a named pipe: the syncer's open() of it
// blocks until release() opens the reading end, so the pass that writes it
// (and every later one) waits, as a slow disk would make it. A durable
// journal's fdatasync of a pipe fails (EINVAL): that pass fails. Declared
// before the journal (its reading end outlives the syncer's writes), made
// after it (the journal's recovery would block reading a pipe).
class BlockingSegment {
  public:
    BlockingSegment() = default;
    void make(const std::string& dir, uint64_t first_seq) {
        char name[40];
        std::snprintf(name, sizeof name, "seg-%016llx.log",
                      static_cast<unsigned long long>(first_seq));
        path_ = dir + "/" + name;
        REQUIRE(::mkfifo(path_.c_str(), 0600) == 0);
    }
    ~BlockingSegment() {
        if (fd_ >= 0) ::close(fd_);
    }
    BlockingSegment(const BlockingSegment&) = delete;
    BlockingSegment& operator=(const BlockingSegment&) = delete;
    void release() {
        if (fd_ < 0) fd_ = ::open(path_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    }
    // What the syncer wrote into the pipe so far.
    std::string written() {
        std::string out;
        char buf[4096];
        for (ssize_t n; fd_ >= 0 && (n = ::read(fd_, buf, sizeof buf)) > 0;)
            out.append(buf, static_cast<size_t>(n));
        return out;
    }

  private:
    std::string path_;
    int fd_ = -1;
};

// Declared after the journal: a failing test still unblocks its syncer
// before the journal's destructor waits for it.
struct ReleaseOnExit {
    BlockingSegment& segment;
    ~ReleaseOnExit() { segment.release(); }
};

journal::Options blocking_options(const std::string& dir, bool durable) {
    journal::Options o;
    o.dir = dir;
    o.durable = durable;
    o.segment_bytes = 1;  // every pass after the first opens a new segment
    o.preallocate = false;
    return o;
}

}  // namespace

TEST_CASE("journal: append_async answers as append does, stored ids and duplicates' first ids",
          "[journal]") {
    test::TempDir dir;
    SqliteStore store(journal_config(dir), 64);
    journal_of(store).pause_indexer(true);
    std::vector<std::string> keys;
    for (int i = 0; i < 10; ++i)
        keys.push_back("async-" + std::to_string(i));
    for (int i = 0; i < 5; ++i)
        keys.push_back("sync-" + std::to_string(i));
    std::vector<NewEvent> events;
    for (const auto& k : keys)
        events.push_back(event(k));  // outlive every callback

    AsyncAnswers first;
    std::map<std::string, std::string> ids;
    for (size_t i = 0; i < keys.size(); ++i) {
        if (keys[i].rfind("sync-", 0) == 0) {
            const InsertResult r = store.insert(events[i]);
            REQUIRE(r.status == InsertStatus::stored);
            ids[keys[i]] = r.id;
        } else {
            store.insert_async(events[i], first.done(keys[i]));
        }
    }
    REQUIRE(test::wait_until([&] { return first.answered() == 10; }, 10s));
    std::set<std::string> distinct;
    for (int i = 0; i < 10; ++i) {
        const std::string& k = keys[static_cast<size_t>(i)];
        const InsertResult r = first.result(k);
        INFO(k);
        REQUIRE(r.status == InsertStatus::stored);
        CHECK(is_event_id(r.id));
        ids[k] = r.id;
        std::lock_guard lk(first.mu);
        CHECK(first.calls[k] == 1);
        CHECK(first.threads[k] != std::this_thread::get_id());  // the syncer answered
    }
    for (const auto& [k, id] : ids)
        distinct.insert(id);
    CHECK(distinct.size() == keys.size());

    // Copies, answered from memory (indexer paused), then from the tables:
    // the same answers from append and append_async.
    for (bool indexed : {false, true}) {
        if (indexed) {
            journal_of(store).pause_indexer(false);
            REQUIRE(journal_of(store).drain());
            REQUIRE(rows_in_tables(dir.file("clayhook.db")) == static_cast<int64_t>(keys.size()));
        }
        AsyncAnswers again;
        for (size_t i = 0; i < keys.size(); ++i) {
            store.insert_async(events[i], again.done(keys[i]));
            const InsertResult sync = store.insert(events[i]);
            INFO(keys[i] << (indexed ? " (indexed)" : " (in memory)"));
            CHECK(sync.status == InsertStatus::duplicate);
            CHECK(sync.id == ids[keys[i]]);
        }
        REQUIRE(test::wait_until([&] { return again.answered() == keys.size(); }, 10s));
        for (const auto& k : keys) {
            INFO(k << (indexed ? " (indexed)" : " (in memory)"));
            const InsertResult r = again.result(k);
            CHECK(r.status == InsertStatus::duplicate);
            CHECK(r.id == ids[k]);
        }
    }
    for (const auto& [k, id] : ids) {
        auto got = store.get(id);
        REQUIRE(got);
        CHECK(got->key == k);
    }
}

TEST_CASE("journal: an async append, and a copy of it, are answered only after its sync",
          "[journal]") {
    test::TempDir tmp;
    const std::string dir = tmp.file("j");
    RecordingIndex index(dir);
    BlockingSegment next;
    // Before the journal: what its callbacks touch.
    const NewEvent a = event("a"), copy = event("a"), b = event("b");
    AsyncAnswers got;
    std::atomic<bool> sync_returned{false};
    InsertResult sync_copy;
    // Not durable: the pipe takes the write and the pass succeeds.
    journal::Journal j(blocking_options(dir, false), index);
    // The records stay in memory: the copies are answered from there,
    // whenever the thread below gets to its append (the index here forgets).
    j.pause_indexer(true);
    REQUIRE(j.append(event("first")).status == InsertStatus::stored);  // seq 1, the first segment
    next.make(dir, 2);

    j.append_async(a, got.done("a"));
    j.append_async(copy, got.done("copy"));
    std::jthread t([&] {
        sync_copy = j.append(copy);
        sync_returned = true;
    });
    ReleaseOnExit release{next};  // before t is joined, on a failure too
    j.append_async(b, got.done("b"));
    // The pass that writes "a" waits on the pipe: nothing is answered, not
    // even the copies, whose record is not durable yet.
    CHECK(got.answered() == 0);
    CHECK_FALSE(sync_returned.load());

    next.release();
    REQUIRE(test::wait_until([&] { return got.answered() == 3 && sync_returned.load(); }, 10s));
    t.join();
    const InsertResult ra = got.result("a");
    REQUIRE(ra.status == InsertStatus::stored);
    CHECK(got.result("copy").status == InsertStatus::duplicate);
    CHECK(got.result("copy").id == ra.id);
    CHECK(sync_copy.status == InsertStatus::duplicate);
    CHECK(sync_copy.id == ra.id);
    CHECK(got.result("b").status == InsertStatus::stored);
    CHECK(got.result("b").id != ra.id);
    {
        std::lock_guard lk(got.mu);
        for (const auto& [name, n] : got.calls) {
            INFO(name);
            CHECK(n == 1);
            CHECK(got.threads[name] != std::this_thread::get_id());
        }
    }
    // Answered after the write: the record is in what the pass wrote.
    const auto scan = journal::scan_segment(next.written());
    REQUIRE(!scan.records.empty());
    CHECK(scan.records[0].seq == 2);
    CHECK(scan.records[0].id == ra.id);
}

TEST_CASE("journal: drain_upto waits for its record only, drain for a later one not synced yet",
          "[journal]") {
    test::TempDir tmp;
    const std::string dir = tmp.file("j");
    RecordingIndex index(dir);
    BlockingSegment next;
    AsyncAnswers got;  // before the journal: its callbacks touch it
    journal::Journal j(blocking_options(dir, false), index);
    REQUIRE(j.append(event("first")).status == InsertStatus::stored);  // seq 1
    next.make(dir, 2);
    ReleaseOnExit release{next};
    j.append_async(event("later"), got.done("later"));  // seq 2: its pass waits on the pipe

    CHECK(j.drain_upto(1, 10s));
    CHECK(index.count() == 1);
    // The whole backlog includes seq 2, which no pass has written yet.
    CHECK_FALSE(j.drain(200ms));
    CHECK(got.answered() == 0);

    next.release();
    CHECK(j.drain(10s));
    CHECK(index.count() == 2);
    // Answered on the syncer's thread, which may come after the indexer.
    REQUIRE(test::wait_until([&] { return got.answered() == 1; }, 10s));
    CHECK(got.result("later").status == InsertStatus::stored);
}

TEST_CASE("journal: a drain ends at a failed indexing transaction, not at its timeout",
          "[journal]") {
    // A host whose database is gone must stop without waiting out the
    // flush's 30 s (its records stay in the journal for the next start).
    test::TempDir tmp;
    const std::string dir = tmp.file("j");
    RecordingIndex index(dir);
    {
        std::lock_guard lk(index.mu);
        index.fail_index = true;
    }
    journal::Options o;
    o.dir = dir;
    o.retry_pause = 100ms;
    journal::Journal j(o, index);
    REQUIRE(j.append(event("a")).status == InsertStatus::stored);
    auto drained = std::async(std::launch::async, [&] { return j.drain(std::chrono::hours(1)); });
    const bool ended = drained.wait_for(10s) == std::future_status::ready;
    CHECK(ended);
    {
        std::lock_guard lk(index.mu);
        index.fail_index = false;  // the retry succeeds: a waiting drain ends too
    }
    CHECK_FALSE(drained.get());
    CHECK(j.drain(10s));
    CHECK(index.count() == 1);
}

TEST_CASE("journal: a failed sync answers its async appends and their copies unavailable",
          "[journal]") {
    test::TempDir tmp;
    const std::string dir = tmp.file("j");
    RecordingIndex index(dir);
    journal::Options o = blocking_options(dir, true);  // fdatasync of the pipe fails
    Said said;
    o.warn = said.hook();
    BlockingSegment next;
    const NewEvent a = event("a"), copy = event("a");
    AsyncAnswers got;
    journal::Journal j(o, index);
    ReleaseOnExit release{next};
    REQUIRE(j.append(event("first")).status == InsertStatus::stored);
    next.make(dir, 2);

    j.append_async(a, got.done("a"));
    j.append_async(copy, got.done("copy"));
    CHECK(got.answered() == 0);
    next.release();
    REQUIRE(test::wait_until([&] { return got.answered() == 2; }, 10s));
    for (const InsertResult& r : {got.result("a"), got.result("copy")}) {
        CHECK(r.status == InsertStatus::unavailable);
        CHECK(r.error == "the intake journal could not be written");
    }
    {
        const auto lines = said.all();
        REQUIRE(!lines.empty());
        CHECK_THAT(lines.back(), Catch::Contains("answered 503"));
    }
    // The sender's retry is a new delivery, stored in the next segment.
    j.append_async(a, got.done("retry"));
    REQUIRE(test::wait_until([&] { return got.answered() == 3; }, 10s));
    CHECK(got.result("retry").status == InsertStatus::stored);
}

TEST_CASE("journal: stopping with async appends waiting answers each of them once", "[journal]") {
    const bool abandon = GENERATE(false, true);
    INFO((abandon ? "abandon()" : "destructor"));
    test::TempDir tmp;
    const std::string dir = tmp.file("j");
    RecordingIndex index(dir);
    std::vector<NewEvent> events;
    std::vector<std::string> keys;
    for (int i = 0; i < 6; ++i)
        keys.push_back("w" + std::to_string(i));
    for (const auto& k : keys)
        events.push_back(event(k));
    const NewEvent copy = event("w0");
    AsyncAnswers got;
    std::atomic<int> probes{0}, closing_probe{0};
    BlockingSegment next;
    // After what the callbacks touch: the destructor calls them.
    auto j = std::make_unique<journal::Journal>(blocking_options(dir, true), index);
    ReleaseOnExit release{next};
    REQUIRE(j->append(event("first")).status == InsertStatus::stored);
    next.make(dir, 2);
    for (size_t i = 0; i < keys.size(); ++i)
        j->append_async(events[i], got.done(keys[i]));
    j->append_async(copy, got.done("copy"));

    journal::Journal* raw = j.get();
    std::thread stopper([&] {
        if (abandon)
            raw->abandon();
        else
            j.reset();
    });
    // Wait until it is stopping (the syncer is still stuck on the pipe): a
    // copy of w0 is then refused at once. The earlier probes wait for w0's
    // sync like any copy; each is answered once too.
    for (;;) {
        const int n = ++probes;
        raw->append_async(copy, [&, n](InsertResult r) {
            if (r.error == "the journal is closing") closing_probe = n;
            got.done("probe" + std::to_string(n))(std::move(r));
        });
        if (closing_probe.load() == n) break;
        if (n == 10'000) {
            FAIL_CHECK("the journal never said it was closing");
            break;
        }
        std::this_thread::sleep_for(1ms);
    }
    // The destructor's syncer writes what is pending, so it is stuck on the
    // pipe: nothing is answered but the last probe. abandon() may find the
    // records not yet taken by the syncer, which then fails them unwritten.
    if (!abandon) CHECK(got.answered() == 1);
    next.release();
    stopper.join();
    if (abandon) j.reset();

    std::lock_guard lk(got.mu);
    CHECK(got.calls.size() == keys.size() + 1 + static_cast<size_t>(probes.load()));
    for (const auto& [name, n] : got.calls) {
        INFO(name);
        CHECK(n == 1);
    }
    // w0 was in the pass that failed on the pipe: it and its copies are 503.
    CHECK(got.results["w0"].status == InsertStatus::unavailable);
    CHECK(got.results["copy"].status == InsertStatus::unavailable);
    for (const auto& [name, r] : got.results) {
        INFO(name);
        CHECK((r.status == InsertStatus::stored || r.status == InsertStatus::unavailable));
        // Abandoned: nothing is written after the failed pass.
        if (abandon) CHECK(r.status == InsertStatus::unavailable);
    }
}
