#pragma once

// The shared engine: one PostgreSQL database that several clayhook hosts use
// at once. Writes go through the same group commit as SQLite's
// (store/GroupCommit.h) on one write connection per host, each batch sent in
// libpq's pipeline mode (one round trip for the whole transaction); reads and
// control-plane writes use a small pool. Dedup is a primary key on
// (source, idempotency_key) with INSERT ... ON CONFLICT DO NOTHING, so N hosts
// inserting one key at once store it once. Deliveries are claimed with a
// lease (FOR UPDATE SKIP LOCKED). See PgStore.cpp for the schema and its
// migrations.

#include "store/GroupCommit.h"
#include "store/Store.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

struct pg_conn;

namespace clayhook {

// What a PostgreSQL connection string says, without connecting (for `check`
// and the errors). Throws std::runtime_error when libpq cannot parse it (the
// text is never echoed: it may hold a password).
struct PgUrlInfo {
    std::string name;     // "postgresql://USER@HOST:PORT/DB", no password
    std::string host;     // as written ("" = libpq's default, a local socket)
    std::string sslmode;  // as written ("" = libpq's default, prefer)
    // The server is on this machine: a Unix socket, localhost or a
    // loopback address.
    bool local() const;
};
PgUrlInfo inspect_postgres_url(const std::string& url);

class PgStore final : public Store, private GroupCommit::Committer {
  public:
    struct Tuning {
        size_t max_batch = 512;
        size_t max_updates = 8192;
        size_t prune_chunk = 4096;
        size_t purge_chunk = 256;  // events examined per retention statement
        // While the database is away, how often the writer tries again.
        std::chrono::milliseconds reconnect_every{500};
    };

    // Connects (store.postgres_url, resolved), applies the schema migrations
    // this version knows under an advisory lock (several hosts starting at
    // once apply each exactly once) and starts the writer. Throws
    // std::runtime_error naming the server (host, port, database; never the
    // password) and the reason.
    PgStore(const StoreConfig& config, size_t max_queue, Tuning tuning);
    PgStore(const StoreConfig& config, size_t max_queue) : PgStore(config, max_queue, Tuning{}) {}
    ~PgStore() override;
    PgStore(const PgStore&) = delete;
    PgStore& operator=(const PgStore&) = delete;

    InsertResult insert(const NewEvent& e) noexcept override { return gc_->insert(e); }
    void insert_async(const NewEvent& e, InsertDone done) noexcept override {
        gc_->insert_async(e, std::move(done));
    }
    bool writable() const noexcept override { return writable_.load(std::memory_order_relaxed); }
    size_t queue_depth() const noexcept override { return gc_->depth(); }
    uint64_t event_count() override;
    std::optional<StoredEvent> get(std::string_view id) override;
    size_t prune_dedup(std::chrono::system_clock::time_point older_than) override;
    PurgeCounts purge_history(int64_t before_ms, int64_t dead_before_ms,
                              std::stop_token stop = {}) override;

    void record(std::vector<DeliveryUpdate> updates) noexcept override {
        gc_->record(std::move(updates));
    }
    void flush() override { gc_->flush(); }
    std::vector<ClaimedDelivery> claim(std::span<const int64_t> ids,
                                       int64_t lease_until_ms) override;
    size_t renew(std::span<const int64_t> ids, int64_t lease_until_ms) override;
    std::vector<DeliveryRef> claimable(std::span<const std::string> plugins, int64_t due_before_ms,
                                       size_t limit) override;
    bool shared() const noexcept override { return true; }
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

    // "postgresql://USER@HOST:PORT/DB": safe to log (no password).
    const std::string& name() const { return name_; }
    std::string location() const override { return name_; }
    // pg_database_size of the database; the server's free space is its own.
    Usage usage() noexcept override;
    // The schema version in the database after the migrations.
    int64_t schema_version() const { return schema_version_; }
    // Test hook, as SqliteStore's.
    void hold_writer(bool held) { gc_->hold(held); }

    // The migrations this version knows, in order (version = index + 1).
    static int64_t known_schema_version();

  private:
    // A pooled connection, returned on scope exit (dropped when broken).
    class Conn {
      public:
        Conn(PgStore& s, pg_conn* c) : s_(s), c_(c) {}
        ~Conn();
        Conn(const Conn&) = delete;
        Conn& operator=(const Conn&) = delete;
        pg_conn* get() const { return c_; }

      private:
        PgStore& s_;
        pg_conn* c_;
    };
    Conn conn();  // from the pool, connecting when none is idle; throws
    // Runs fn on a pooled connection; once more on a fresh one when the
    // pooled one turns out broken (the server restarted since it was used).
    template <class F>
    auto with_conn(F&& fn) -> decltype(fn(static_cast<pg_conn*>(nullptr)));
    pg_conn* connect() const;  // a new connection; throws naming the server
    // Runs fn inside BEGIN .. COMMIT on a pooled connection.
    void txn(const std::string& what, const std::function<void(pg_conn*)>& fn);

    void migrate(pg_conn* c);
    bool ensure_writer() noexcept;  // reconnects the write connection if it is gone
    // Ends an aborted transaction on the write connection, or drops it.
    void rollback_writer() noexcept;

    // GroupCommit::Committer
    bool commit(GroupCommit::Batch& batch, std::string& error) noexcept override;
    void idle() noexcept override;
    bool commit_once(GroupCommit::Batch& batch, std::string& error);

    std::string url_;  // the secret: never logged
    std::string name_;
    std::string owner_;
    bool durable_;
    size_t pool_size_;
    std::chrono::milliseconds connect_timeout_;
    Tuning tuning_;
    int64_t schema_version_ = 0;

    pg_conn* wconn_ = nullptr;  // the writer's: used by whoever holds the group commit
    std::vector<DeliveryRef> new_deliveries_;
    EventIdGenerator ids_;
    std::chrono::steady_clock::time_point next_reconnect_{};
    std::string writer_error_;  // why the last connection attempt failed
    bool serving_ = false;      // the constructor's first connection is made

    std::mutex pool_mu_;
    std::condition_variable pool_cv_;
    std::vector<pg_conn*> idle_;
    size_t open_ = 0;  // pooled connections in existence (idle + leased)

    std::atomic<bool> writable_{true};
    std::unique_ptr<GroupCommit> gc_;  // last: stopped first
};

}  // namespace clayhook
