#pragma once

// The engine-neutral write path of a store: a bounded queue of inserts,
// claims and recorded results, and one write connection that commits
// everything queued while the previous transaction committed in the next one
// (group commit). The engine (SQLite, PostgreSQL) supplies only "commit this
// batch in one transaction"; the queue, the leader hand-over, the jobs, the
// backpressure on results and the retry of results after a failed commit are
// here, so both engines behave the same under load and under failure.
//
// Who commits: a caller of insert() or claim() that finds nobody holding the
// write connection commits the queue itself (it leads the group commit, so no
// thread has to be woken to start it); otherwise the writer thread does, after
// the leader stops, and it runs the jobs (control-plane transactions) and the
// engine's idle work (reconnecting a lost database). An insert_async() never
// leads: its caller is an event loop, so it queues and wakes the writer.

#include "store/Store.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace clayhook {

class GroupCommit {
  public:
    // One waiting insert, on its caller's stack.
    struct Insert {
        const NewEvent* event = nullptr;
        InsertResult result;  // written by the committer
    };
    // One waiting claim (Store::claim), on its caller's stack.
    struct Claim {
        std::span<const int64_t> ids;
        int64_t now_ms = 0;
        int64_t lease_until_ms = 0;
        std::vector<ClaimedDelivery> claimed;  // written by the committer
        bool failed = false;                   // the transaction did not commit
        std::string error;
    };
    // What one transaction carries. The committer either commits it all
    // (filling every result and clearing `updates`) or nothing: it then
    // returns false with the reason, GroupCommit makes every insert
    // `unavailable` and every claim `failed` with it, and `updates` are left
    // as they were, to be retried with a later batch.
    struct Batch {
        std::vector<Insert*> inserts;
        std::vector<Claim*> claims;
        std::vector<DeliveryUpdate> updates;
    };

    class Committer {
      public:
        virtual ~Committer() = default;
        // On whichever thread holds the write connection, one at a time.
        // Returns true when the batch committed; false, with `error` set
        // (safe to log), when nothing of it did.
        virtual bool commit(Batch& batch, std::string& error) noexcept = 0;
        // On the writer thread, every idle_period while nothing is queued.
        virtual void idle() noexcept {}
    };

    struct Limits {
        size_t max_queue = 1024;    // inserts waiting: past it, insert() is overloaded at once
        size_t max_batch = 512;     // inserts per transaction at most
        size_t max_updates = 8192;  // results waiting before record() blocks
        std::chrono::milliseconds retry_pause{200};  // results wait after a failed commit
        std::chrono::milliseconds idle_period{0};    // 0: Committer::idle never called
    };

    // `name` prefixes errors ("store /var/x.db is closing"). Starts the
    // writer thread.
    GroupCommit(Committer& committer, Limits limits, std::string name);
    // stop(), then joins the writer.
    ~GroupCommit();
    GroupCommit(const GroupCommit&) = delete;
    GroupCommit& operator=(const GroupCommit&) = delete;

    // Finishes everything queued and stops the writer; later calls are
    // refused (unavailable / throw). The committer must stay valid until it
    // returns.
    void stop();

    InsertResult insert(const NewEvent& e) noexcept;
    // As insert(), without waiting (IntakeWriter::insert_async): queued in
    // the same queue with the same checks, committed by the writer thread
    // (or a leading insert() that finds it queued), never on the caller's
    // thread. `done` is called once, outside mu_: at once when overloaded or
    // closing, else after the batch's listeners heard of it. Everything
    // queued when stop() is called is answered before it returns.
    void insert_async(const NewEvent& e, IntakeWriter::InsertDone done) noexcept;
    // Blocks until the claim's transaction committed or failed.
    void claim(Claim& c) noexcept;
    void record(std::vector<DeliveryUpdate> updates) noexcept;
    // Waits until every result recorded before the call is committed; throws
    // when the commit fails.
    void flush();
    // Runs fn on the write connection between batches; rethrows its error.
    void run_on_writer(std::function<void()> fn);
    // Test hook: while held, no new transaction starts.
    void hold(bool held);

    size_t depth() const noexcept { return depth_.load(std::memory_order_relaxed); }

  private:
    struct Waiter {
        Insert* insert = nullptr;
        Claim* claim = nullptr;
        bool async = false;  // an AsyncWaiter: finish() answers and frees it
        bool done = false;
        std::mutex m;
        std::condition_variable cv;
    };
    // An insert_async() on the heap: its insert, and whom to tell.
    struct AsyncWaiter : Waiter {
        Insert item;
        IntakeWriter::InsertDone done_cb;
    };
    struct Job {
        std::function<void()> run;
        std::exception_ptr error;
        bool done = false;
        std::condition_variable cv;
    };

    void enqueue_and_wait(Waiter& w, std::unique_lock<std::mutex>& lk);
    void drain(std::unique_lock<std::mutex>& lk, const Waiter* own);
    bool work_queued() const;  // under mu_
    bool updates_due() const;  // under mu_
    void writer_loop();
    // Answers w: wakes its caller, or calls an async waiter's callback and
    // frees it. Outside mu_.
    static void finish(Waiter* w);
    // A batch whose transaction did not commit: every insert and claim in
    // it is answered with `error`.
    static void fail(Batch& batch, const std::string& error);

    Committer& committer_;
    Limits limits_;
    std::string name_;

    std::mutex mu_;
    std::condition_variable work_cv_;
    std::condition_variable space_cv_;  // record() waiting for room
    std::vector<Waiter*> ring_;         // inserts: a fixed ring of max_queue slots
    size_t head_ = 0, count_ = 0;
    std::vector<Waiter*> claims_;
    std::vector<Job*> jobs_;
    std::vector<DeliveryUpdate> updates_;
    std::chrono::steady_clock::time_point updates_not_before_{};
    bool stopping_ = false;
    bool held_ = false;
    bool busy_ = false;  // someone holds the write connection; under mu_
    std::atomic<size_t> depth_{0};
    std::thread writer_;
};

}  // namespace clayhook
