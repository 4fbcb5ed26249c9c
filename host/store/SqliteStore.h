#pragma once

// The embedded engine: one SQLite file in WAL mode, one writer thread that
// group-commits every insert queued while the previous transaction committed,
// and a separate read connection. See SqliteStore.cpp for the schema and why.

#include "store/FreeSpace.h"
#include "store/GroupCommit.h"
#include "store/SqliteCheckpointer.h"
#include "store/Store.h"
#include "store/journal/Journal.h"
#include "store/journal/KeyFilter.h"

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

// The sqlite3 C API stays out of this header; these match its typedefs.
struct sqlite3;
struct sqlite3_stmt;

namespace clayhook {

// SipHash-2-4 with a 128-bit key (k0, k1 as the reference's little-endian key
// halves), 64-bit result. Exposed for its reference test vectors.
uint64_t siphash24(uint64_t k0, uint64_t k1, const void* data, size_t size);

class SqliteStore final : public Store, private GroupCommit::Committer, private journal::Index {
  public:
    // Knobs that are not in the config because only tests and benchmarks
    // have a reason to turn them.
    struct Tuning {
        size_t max_batch = 512;                        // inserts per transaction at most
        std::chrono::milliseconds busy_timeout{5000};  // waiting for another process's lock
        size_t prune_chunk = 4096;  // dedup records examined per prune transaction
        size_t purge_chunk = 256;   // events examined per retention transaction
        size_t max_updates =
            8192;  // recorded results waiting for the writer before record() blocks
        // The intake journal (store.journal): unindexed deliveries before
        // appends are refused, and the size past which a segment is closed.
        size_t journal_max_backlog = 200'000;
        uint64_t journal_segment_bytes = 64ull << 20;
        bool journal_start_paused = false;  // tests: recovered records stay unindexed
        // WAL checkpoints (SqliteCheckpointer): a background pass per this
        // many pages of WAL, a RESTART on the writer at the second figure.
        int checkpoint_pages = 1000;
        int checkpoint_restart_pages = 16384;
    };

    // Opens (creating the folder and a 0600 file when missing), takes the
    // store's exclusive lock (a second process on the same file is refused,
    // naming the holder) and starts the writer. Throws std::runtime_error
    // naming the path and the reason.
    SqliteStore(const StoreConfig& config, size_t max_queue, Tuning tuning);
    SqliteStore(const StoreConfig& config, size_t max_queue)
        : SqliteStore(config, max_queue, Tuning{}) {}
    // Finishes everything queued, stops the writer, closes the connections.
    // Like any object, it must outlive the calls into it: destroy it after
    // every insert() has returned. insert_async() callbacks still waiting
    // are called before it returns.
    ~SqliteStore() override;
    SqliteStore(const SqliteStore&) = delete;
    SqliteStore& operator=(const SqliteStore&) = delete;

    InsertResult insert(const NewEvent& e) noexcept override;
    // Direct: queued for the writer (GroupCommit::insert_async). With the
    // journal: answered by its syncer (journal::Journal::append_async).
    void insert_async(const NewEvent& e, InsertDone done) noexcept override;
    // False after a failed commit, while the database file is not in place
    // (deleted or replaced under the host), and while its filesystem has
    // less than store.min_free_space left.
    bool writable() const noexcept override {
        return writable_.load(std::memory_order_relaxed) && !space_->low() && file_in_place();
    }
    size_t queue_depth() const noexcept override { return gc_->depth(); }
    uint64_t event_count() override;
    std::optional<StoredEvent> get(std::string_view id) override;
    size_t prune_dedup(std::chrono::system_clock::time_point older_than) override;
    PurgeCounts purge_history(int64_t before_ms, int64_t dead_before_ms,
                              std::stop_token stop = {}) override;

    void record(std::vector<DeliveryUpdate> updates) noexcept override {
        gc_->record(std::move(updates));
    }
    void flush() override;
    std::vector<ClaimedDelivery> claim(std::span<const int64_t> ids,
                                       int64_t lease_until_ms) override;
    size_t renew(std::span<const int64_t> ids, int64_t lease_until_ms) override;
    std::vector<DeliveryRef> claimable(std::span<const std::string> plugins, int64_t due_before_ms,
                                       size_t limit) override;
    bool shared() const noexcept override { return false; }
    const std::string& owner() const noexcept override { return owner_; }
    void load_pending(const std::function<void(DeliveryRef&&)>& fn,
                      std::string_view plugin = {}) override;
    std::vector<StoredEvent> events_by_seq(std::span<const int64_t> seqs) override;
    std::optional<Scheduled> schedule_again(std::string_view event_id, std::string_view plugin,
                                            int64_t at_ms, std::span<const int64_t> busy) override;
    std::vector<DeliveryRef> replay(std::span<const int64_t> delivery_ids) override;
    std::vector<int64_t> dead_ids(std::string_view plugin, size_t limit) override;
    size_t discard_dead(std::span<const int64_t> delivery_ids) override;
    std::vector<int64_t> kill_pending(const KillFilter& f, const std::string& reason) override;
    void settle_crash(const std::string& owner, std::span<const int64_t> guilty,
                      const std::string& reason) override;
    std::optional<std::string> kv_get(std::string_view plugin, std::string_view key) override;
    void kv_put(std::string_view plugin, std::string_view key, std::string_view value) override;
    bool kv_delete(std::string_view plugin, std::string_view key) override;
    std::set<std::string> paused_plugins() override;
    void set_paused(std::string_view plugin, bool paused) override;
    std::vector<EventSummary> list_events(const EventFilter& f) override;
    std::vector<DeliveryInfo> event_deliveries(std::string_view event_id) override;
    std::vector<DeliveryInfo> list_deliveries(const DeliveryFilter& f) override;
    std::vector<std::pair<std::string, std::array<int64_t, 3>>> delivery_counts() override;
    std::vector<DeadLetterGroup> dead_letter_groups(size_t limit) override;

    // What the write connection reports after open, read back rather than
    // assumed (for `clayhook check` and the tests).
    struct Settings {
        std::string journal_mode;  // "wal"
        int synchronous = -1;      // 2 = FULL (durable), 1 = NORMAL
    };
    const Settings& settings() const { return settings_; }
    const std::string& path() const { return path_; }
    std::string location() const override { return "sqlite:" + path_; }
    // The database file and its WAL; the free space of their filesystem.
    Usage usage() noexcept override;

    // Test hook: while held, the writer starts no new transaction, so what is
    // queued stays queued. Lets tests fill the queue exactly (overloaded) and
    // put chosen inserts into one batch (duplicates within a batch). The
    // destructor releases it.
    void hold_writer(bool held) { gc_->hold(held); }
    // The intake journal (store.journal), or nullptr.
    journal::Journal* intake_journal() { return journal_.get(); }
    // Who copies the WAL into the database file (never the writer's commits).
    SqliteCheckpointer& checkpointer() { return *checkpointer_; }

  private:
    struct DbCloser {
        void operator()(sqlite3* db) const;
    };
    struct StmtFinalizer {
        void operator()(sqlite3_stmt* s) const;
    };
    using DbPtr = std::unique_ptr<sqlite3, DbCloser>;
    using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

    struct PruneStep {
        size_t deleted = 0;
        bool finished = false;
        int64_t next_hash = 0;
    };

    void lock_exclusively();
    void open_write_connection();
    void create_schema();
    void prepare_statements();

    // GroupCommit::Committer: one transaction for the lot.
    bool commit(GroupCommit::Batch& batch, std::string& error) noexcept override;
    bool apply_claims(GroupCommit::Claim& c, std::string& error);
    bool apply_update(const DeliveryUpdate& u, std::string& error);
    bool insert_deliveries(const NewEvent& e, int64_t seq, std::string& error);
    // Binds the event's own columns of insert_event_ (all but seq and id).
    // False when SQLite refuses a value (beyond its length limit).
    bool bind_event_columns(const NewEvent& e);
    // Decides one item inside the open transaction. False on an SQLite error
    // that dooms the whole transaction (the message is in `error`).
    bool insert_one(GroupCommit::Insert& r, int64_t& next_seq, std::string& error);
    bool insert_event_row(int64_t seq, std::string_view preset_id, std::string& id,
                          std::string& error);

    // journal::Index: the journal's records go into the tables here.
    uint64_t indexed_upto() override;
    uint64_t key_hash(std::string_view source, std::string_view key) const override {
        return static_cast<uint64_t>(dedup_hash_of(source, key));
    }
    std::optional<std::string> find_stored(std::string_view source, std::string_view key,
                                           uint64_t hash) override;
    void index(const std::vector<const journal::Record*>& records,
               const std::vector<uint64_t>& hashes, uint64_t upto) override;
    void sync_indexed() override;
    void index_on_writer(const std::vector<const journal::Record*>& records,
                         const std::vector<uint64_t>& hashes, uint64_t upto);
    // index_on_writer()'s records, decided and written (see the definition).
    // False, with `error`, when a statement failed.
    bool index_in_key_order(const std::vector<const journal::Record*>& records,
                            const std::vector<uint64_t>& hashes, int64_t& next_seq,
                            size_t& duplicates, std::string& error);
    int64_t dedup_hash_of(std::string_view source, std::string_view key) const;
    void load_stored_keys();
    void rollback_if_open();
    PruneStep prune_step(int64_t cutoff_ms, int64_t from_hash);
    void run_on_writer(std::function<void()> fn) { gc_->run_on_writer(std::move(fn)); }

    std::string path_;
    dev_t file_dev_ = 0;  // the open database file, as opened
    ino_t file_ino_ = 0;
    bool file_in_place() const noexcept;
    // An event the intake journal still holds has no delivery rows yet:
    // what reads or changes them by event id and finds none indexes it
    // (drain_upto() its record's seq, not the whole backlog) and tries
    // again. True when the tables are worth asking again: the record was
    // indexed by the drain, or is not held (indexed since they were read, or
    // unknown); false when a held record could not be indexed.
    bool index_journal_first(std::string_view event_id);
    std::vector<DeliveryInfo> event_deliveries_indexed(std::string_view event_id);
    std::optional<Scheduled> schedule_again_indexed(std::string_view event_id,
                                                    std::string_view plugin, int64_t at_ms,
                                                    std::span<const int64_t> busy);
    // insert() and insert_async() with the journal: why a new delivery is
    // refused before the journal takes it (nullopt: it may go in).
    // `bytes`: the body's, counted towards the next look at the free space.
    std::optional<InsertResult> refused_by_journal_path(uint64_t bytes);
    // store.min_free_space: why new deliveries are refused for want of room.
    // Asked by the writer for a batch of inserts, by the intake's threads
    // before the journal takes a record, by the indexer and the pruner.
    std::unique_ptr<FreeSpace> space_;
    bool durable_;
    size_t max_queue_;
    Tuning tuning_;
    Settings settings_;
    std::string owner_;
    int lock_fd_ = -1;  // the exclusive lock on <path>.lock, held while open

    // Write side: touched by the constructor, then only by the writer thread.
    DbPtr wdb_;
    StmtPtr begin_, commit_, rollback_, max_seq_, insert_dedup_, find_dup_, repoint_dedup_,
        insert_event_, prune_scan_, prune_delete_, insert_delivery_, update_delivery_,
        insert_attempt_, claim_, claim_ordered_;
    std::vector<DeliveryRef> new_deliveries_;  // created by the open transaction
    uint64_t hash_k0_ = 0, hash_k1_ = 0;
    EventIdGenerator ids_;

    // Read side: a pool of connections, one caller each at a time, each with
    // its statements prepared once (keyed by the SQL text's address).
    struct Reader {
        DbPtr db;
        std::vector<std::pair<const char*, StmtPtr>> stmts;
        sqlite3_stmt* stmt(const char* sql);
    };
    class ReaderLease {
      public:
        ReaderLease(SqliteStore& s, std::unique_ptr<Reader> r) : s_(s), r_(std::move(r)) {}
        ~ReaderLease();
        ReaderLease(const ReaderLease&) = delete;
        ReaderLease& operator=(const ReaderLease&) = delete;
        Reader* operator->() { return r_.get(); }
        sqlite3* db() { return r_->db.get(); }

      private:
        SqliteStore& s_;
        std::unique_ptr<Reader> r_;
    };
    ReaderLease reader();
    std::unique_ptr<Reader> open_reader();
    std::mutex readers_mu_;
    std::vector<std::unique_ptr<Reader>> readers_;  // idle ones

    // Runs fn inside BEGIN IMMEDIATE .. COMMIT on the writer (control plane).
    // `deletion_only`: the commit skips its fsync (see LazySync).
    void write_txn(const std::string& what, const std::function<void(sqlite3*)>& fn,
                   bool deletion_only = false);
    // While alive, on the writer thread: commits do not fsync (synchronous
    // NORMAL). Only for transactions that merely delete history (retention,
    // dedup pruning): the next durable commit syncs their WAL frames with its
    // own, and one lost to a power cut is deleted again by the next pass. So
    // the maintenance never adds fsyncs to the intake's disk.
    class LazySync {
      public:
        explicit LazySync(SqliteStore& s);
        ~LazySync();
        LazySync(const LazySync&) = delete;
        LazySync& operator=(const LazySync&) = delete;

      private:
        SqliteStore& s_;
    };

    // After the writer connection, before the writer: closed after the last
    // commit, before the connection it hooks.
    std::unique_ptr<SqliteCheckpointer> checkpointer_;
    std::atomic<bool> writable_{true};
    // Last: started when the connections are ready, stopped first.
    std::unique_ptr<GroupCommit> gc_;
    // After the writer: its indexer commits through gc_; stopped before it.
    std::unique_ptr<journal::KeyFilter> stored_keys_;  // the dedup table's hashes (journal only)
    std::unique_ptr<journal::Journal> journal_;
    bool journal_enabled_ = false;
};

}  // namespace clayhook
