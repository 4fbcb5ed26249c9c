#include "store/GroupCommit.h"

#include <pthread.h>

#include <algorithm>
#include <stdexcept>

namespace clayhook {

GroupCommit::GroupCommit(Committer& committer, Limits limits, std::string name)
    : committer_(committer), limits_(limits), name_(std::move(name)) {
    if (limits_.max_queue == 0)
        throw std::runtime_error("the insert queue must hold at least one request");
    limits_.max_batch = std::max<size_t>(limits_.max_batch, 1);
    limits_.max_updates = std::max<size_t>(limits_.max_updates, 1);
    ring_.assign(limits_.max_queue, nullptr);
    writer_ = std::thread([this] { writer_loop(); });
}

GroupCommit::~GroupCommit() {
    stop();
}

void GroupCommit::stop() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
        held_ = false;
    }
    work_cv_.notify_all();
    space_cv_.notify_all();
    if (writer_.joinable()) writer_.join();
    // The writer returns only once nothing is queued, and nothing is queued
    // after stopping_: this finds nothing. Were it otherwise, an insert left
    // here would never be answered (its event loop would wait forever).
    std::vector<Waiter*> left;
    {
        std::lock_guard lk(mu_);
        for (; count_ > 0; --count_) {
            left.push_back(ring_[head_]);
            head_ = (head_ + 1) % limits_.max_queue;
        }
        depth_.store(0, std::memory_order_relaxed);
        left.insert(left.end(), claims_.begin(), claims_.end());
        claims_.clear();
    }
    for (Waiter* w : left) {
        if (w->insert) w->insert->result = {InsertStatus::unavailable, {}, name_ + " is closing"};
        if (w->claim) {
            w->claim->failed = true;
            w->claim->error = name_ + " is closing";
        }
        finish(w);
    }
}

void GroupCommit::finish(Waiter* w) {
    if (w->async) {
        // Freed before the callback runs: once answered, the caller may
        // drop the event it points to.
        std::unique_ptr<AsyncWaiter> a(static_cast<AsyncWaiter*>(w));
        IntakeWriter::InsertDone done = std::move(a->done_cb);
        InsertResult result = std::move(a->item.result);
        a.reset();
        done(std::move(result));
        return;
    }
    // Under the waiter's own mutex: its caller can only see `done` and return
    // (destroying the Waiter) after we let go of it. A mutex per waiter, not
    // mu_: waking 64 callers while holding the queue's lock made each of them
    // block again on it at once.
    std::lock_guard own(w->m);
    w->done = true;
    w->cv.notify_one();
}

InsertResult GroupCommit::insert(const NewEvent& e) noexcept {
    Insert item;
    item.event = &e;
    Waiter w;
    w.insert = &item;
    std::unique_lock lk(mu_);
    if (stopping_) return {InsertStatus::unavailable, {}, name_ + " is closing"};
    if (count_ == limits_.max_queue) {
        lk.unlock();
        return {InsertStatus::overloaded,
                {},
                "store insert queue is full (" + std::to_string(limits_.max_queue) + " waiting)"};
    }
    ring_[(head_ + count_) % limits_.max_queue] = &w;
    ++count_;
    depth_.store(count_, std::memory_order_relaxed);
    enqueue_and_wait(w, lk);
    return std::move(item.result);
}

void GroupCommit::insert_async(const NewEvent& e, IntakeWriter::InsertDone done) noexcept {
    std::unique_ptr<AsyncWaiter> w;
    try {
        w = std::make_unique<AsyncWaiter>();
    } catch (const std::exception& ex) {
        done({InsertStatus::unavailable, {}, name_ + ": " + ex.what()});
        return;
    }
    w->async = true;
    w->item.event = &e;
    w->insert = &w->item;
    w->done_cb = std::move(done);
    bool closing = false;
    {
        std::lock_guard lk(mu_);
        closing = stopping_;
        if (!closing && count_ < limits_.max_queue) {
            ring_[(head_ + count_) % limits_.max_queue] = w.release();
            ++count_;
            depth_.store(count_, std::memory_order_relaxed);
            // Never led here: the caller is an event loop. The writer takes
            // it; while someone holds the connection, that one wakes the
            // writer when it lets go with work left (enqueue_and_wait), or
            // is the writer and looks again before it sleeps (writer_loop).
            if (!busy_) work_cv_.notify_one();
            return;
        }
    }
    // Refused at once, on the caller's thread, outside mu_.
    if (closing)
        w->done_cb({InsertStatus::unavailable, {}, name_ + " is closing"});
    else
        w->done_cb(
            {InsertStatus::overloaded,
             {},
             "store insert queue is full (" + std::to_string(limits_.max_queue) + " waiting)"});
}

void GroupCommit::claim(Claim& c) noexcept {
    Waiter w;
    w.claim = &c;
    std::unique_lock lk(mu_);
    if (stopping_) {
        c.failed = true;
        c.error = name_ + " is closing";
        return;
    }
    claims_.push_back(&w);
    enqueue_and_wait(w, lk);
}

// With `w` queued: leads the commit when nobody holds the connection, then
// waits for w's transaction.
void GroupCommit::enqueue_and_wait(Waiter& w, std::unique_lock<std::mutex>& lk) {
    if (!busy_ && !held_ && jobs_.empty()) {
        // This caller commits everything queued (its own item included). It
        // is already running, so no thread has to be woken to start the
        // commit: with a dedicated writer thread, that wake-up waited behind
        // every request thread woken by the previous commit.
        busy_ = true;
        drain(lk, &w);
        busy_ = false;
        // Work the leader left (a job, or items queued while held) goes to
        // the writer thread.
        // Results waiting out the pause after a failed commit count too: the
        // writer must wake to time that pause (its wait is untimed otherwise).
        if (!jobs_.empty() || ((work_queued() || !updates_.empty()) && !held_) || stopping_)
            work_cv_.notify_one();
    }
    lk.unlock();
    std::unique_lock own(w.m);
    w.cv.wait(own, [&] { return w.done; });
}

bool GroupCommit::updates_due() const {
    return !updates_.empty() && std::chrono::steady_clock::now() >= updates_not_before_;
}

bool GroupCommit::work_queued() const {
    return count_ > 0 || !claims_.empty() || updates_due();
}

void GroupCommit::drain(std::unique_lock<std::mutex>& lk, const Waiter* own) {
    std::vector<Waiter*> waiters;
    bool own_done = false;
    // Jobs come first: a control transaction waits for at most one batch. A
    // leading caller stops once its own item is committed, so its answer is
    // not held back by other callers' batches; what is left goes to the writer.
    while (work_queued() && !held_ && jobs_.empty() && !own_done) {
        // Everything that piled up while the last transaction committed goes
        // into this one: that is the group commit. Claims and recorded
        // results ride along in the same transaction.
        Batch batch;
        const size_t n = std::min(count_, limits_.max_batch);
        for (size_t i = 0; i < n; ++i) {
            waiters.push_back(ring_[head_]);
            batch.inserts.push_back(ring_[head_]->insert);
            head_ = (head_ + 1) % limits_.max_queue;
        }
        count_ -= n;
        depth_.store(count_, std::memory_order_relaxed);
        for (Waiter* c : claims_) {
            waiters.push_back(c);
            batch.claims.push_back(c->claim);
        }
        claims_.clear();
        // With claims aboard, every waiting result goes too, pause or not: a
        // result committed after a claim of the same delivery would
        // overwrite the newer attempt (its count, its lease).
        if (updates_due() || !batch.claims.empty()) batch.updates.swap(updates_);
        const bool had_updates = !batch.updates.empty();
        lk.unlock();

        std::string error;
        if (!committer_.commit(batch, error)) fail(batch, error);
        lk.lock();
        if (!batch.updates.empty()) {
            // The commit failed: keep them for the next one, a little later.
            batch.updates.insert(batch.updates.end(), std::make_move_iterator(updates_.begin()),
                                 std::make_move_iterator(updates_.end()));
            updates_ = std::move(batch.updates);
            updates_not_before_ = std::chrono::steady_clock::now() + limits_.retry_pause;
        } else if (had_updates) {
            space_cv_.notify_all();
        }
        lk.unlock();
        for (Waiter* w : waiters) {
            own_done = own_done || w == own;
            finish(w);
        }
        waiters.clear();
        lk.lock();
    }
}

void GroupCommit::fail(Batch& batch, const std::string& error) {
    for (Insert* i : batch.inserts)
        i->result = {InsertStatus::unavailable, {}, error};
    for (Claim* c : batch.claims) {
        c->failed = true;
        c->error = error;
        c->claimed.clear();
    }
}

void GroupCommit::writer_loop() {
    pthread_setname_np(pthread_self(), "store-writer");  // for top -H, perf and gdb
    std::unique_lock lk(mu_);
    for (;;) {
        auto ready = [&] {
            return !busy_ && (stopping_ || (!held_ && (work_queued() || !jobs_.empty())));
        };
        bool idle_due = false;
        while (!ready() && !idle_due) {
            auto wake = std::chrono::steady_clock::time_point::max();
            if (!updates_.empty() && !updates_due()) wake = updates_not_before_;
            if (limits_.idle_period.count() > 0)
                wake = std::min(wake, std::chrono::steady_clock::now() + limits_.idle_period);
            if (wake == std::chrono::steady_clock::time_point::max()) {
                // Whoever holds the connection (a leading caller) notifies
                // when it lets go with work left; record(), insert_async()
                // and run_on_writer() notify too (insert() and claim() lead
                // when nobody holds it).
                work_cv_.wait(lk);
            } else if (work_cv_.wait_until(lk, wake) == std::cv_status::timeout &&
                       limits_.idle_period.count() > 0 && !busy_ && !ready()) {
                idle_due = true;
            }
        }
        busy_ = true;
        if (idle_due) {
            lk.unlock();
            committer_.idle();
            lk.lock();
            busy_ = false;
            continue;
        }
        if (!jobs_.empty()) {
            Job* job = jobs_.front();
            jobs_.erase(jobs_.begin());
            lk.unlock();
            try {
                job->run();
            } catch (...) {
                job->error = std::current_exception();
            }
            lk.lock();
            busy_ = false;
            job->done = true;
            job->cv.notify_one();
            continue;
        }
        if (!held_) drain(lk, nullptr);
        busy_ = false;
        // All answered; results that cannot be committed now stay pending in
        // the store and run again next time.
        if (stopping_ && count_ == 0 && claims_.empty() && jobs_.empty() &&
            (updates_.empty() || !updates_due()))
            return;
    }
}

void GroupCommit::record(std::vector<DeliveryUpdate> updates) noexcept {
    if (updates.empty()) return;
    std::unique_lock lk(mu_);
    space_cv_.wait(lk, [&] { return stopping_ || updates_.size() < limits_.max_updates; });
    for (auto& u : updates)
        updates_.push_back(std::move(u));
    if (!busy_) work_cv_.notify_one();
}

void GroupCommit::flush() {
    run_on_writer([this] {
        Batch batch;
        {
            std::lock_guard lk(mu_);
            batch.updates.swap(updates_);
        }
        if (batch.updates.empty()) return;
        std::string error;
        if (committer_.commit(batch, error) && batch.updates.empty()) {
            space_cv_.notify_all();
            return;
        }
        std::lock_guard lk(mu_);
        batch.updates.insert(batch.updates.end(), std::make_move_iterator(updates_.begin()),
                             std::make_move_iterator(updates_.end()));
        updates_ = std::move(batch.updates);
        throw std::runtime_error("commit delivery results to " + name_ + ": " + error);
    });
}

void GroupCommit::run_on_writer(std::function<void()> fn) {
    Job job;
    job.run = std::move(fn);
    std::unique_lock lk(mu_);
    if (stopping_) throw std::runtime_error(name_ + " is closing");
    jobs_.push_back(&job);
    work_cv_.notify_one();
    job.cv.wait(lk, [&] { return job.done; });
    if (job.error) std::rethrow_exception(job.error);
}

void GroupCommit::hold(bool held) {
    {
        std::lock_guard lk(mu_);
        held_ = held;
    }
    work_cv_.notify_all();
}

}  // namespace clayhook
