#include "store/journal/Journal.h"

#include "store/journal/SegmentFile.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <system_error>

namespace clayhook::journal {

namespace fs = std::filesystem;

namespace {

std::string errno_text(int err) {
    return std::error_code(err, std::generic_category()).message();
}

int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

void sync_dir(const std::string& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("open folder " + dir + ": " + errno_text(errno));
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0) throw std::runtime_error("fsync folder " + dir + ": " + errno_text(err));
}

// A whole segment (SegmentFile); one found at start may not vanish.
std::string read_all(const std::string& path) {
    std::string error;
    auto f = read_segment_file(path, error);
    if (!f)
        throw std::runtime_error(error.empty() ? "cannot read " + path + ": it is gone" : error);
    return std::move(f->bytes);
}

// Writes the end marker for `next_seq` at `offset`. False (errno set) when
// it could not. A pipe has no offset: nothing to write over there (tests
// block the syncer with one), so it is skipped.
bool write_end_marker(int fd, uint64_t offset, uint64_t next_seq) {
    const std::string marker = end_marker(next_seq);
    for (size_t m = 0; m < marker.size();) {
        const ssize_t n =
            ::pwrite(fd, marker.data() + m, marker.size() - m, static_cast<off_t>(offset + m));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == ESPIPE) return true;
        if (n <= 0) {
            if (n == 0) errno = EIO;
            return false;
        }
        m += static_cast<size_t>(n);
    }
    return true;
}
}  // namespace

// The waiters of a sync sleep on one futex word, bumped after each pass:
// no mutex to reacquire on the way out (64 waiters woken at once would
// queue on it) and no spinning (std::atomic::wait yields in a loop first,
// which on two cores starves the syncer it waits for).
// Two words, by the parity of the pass: a pass wakes only the appends it
// wrote, not those queued for the next one meanwhile.
void Journal::wait_synced(uint64_t seq, uint64_t pass) {
    std::atomic<uint32_t>& word = sync_gen_[pass & 1];
    for (;;) {
        const uint32_t gen = word.load(std::memory_order_acquire);
        if (synced_.load(std::memory_order_acquire) >= seq) return;
        ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, gen, nullptr,
                  nullptr, 0);
    }
}

void Journal::publish_synced(uint64_t upto, uint64_t pass) {
    std::atomic<uint32_t>& word = sync_gen_[pass & 1];
    synced_.store(upto, std::memory_order_release);
    word.fetch_add(1, std::memory_order_acq_rel);
    ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr,
              nullptr, 0);
}

Journal::Journal(Options options, Index& index) : opt_(std::move(options)), index_(index) {
    opt_.index_batch = std::max<size_t>(opt_.index_batch, 1);
    opt_.max_backlog = std::max<size_t>(opt_.max_backlog, 1);
    paused_ = opt_.start_paused;
    // The key map holds at most one entry per record of the backlog: sized
    // for that bound now, it never rehashes under mu_ while appends wait
    // (growing past 172,933 keys took 7 ms on this machine). Capped, so
    // that a very large bound does not take its memory up front.
    keys_.reserve(std::min<size_t>(opt_.max_backlog, kReservedKeys));
    recover();
    if (opt_.durable && opt_.preallocate)
        spare_ =
            std::make_unique<SpareSegment>(opt_.dir, opt_.segment_bytes, opt_.warn, opt_.room_for);
    syncer_ = std::thread([this] { syncer_loop(); });
    indexer_ = std::thread([this] { indexer_loop(); });
}

Journal::~Journal() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
    }
    sync_cv_.notify_all();
    if (syncer_.joinable()) syncer_.join();
    complete_async(true);
    index_cv_.notify_all();
    if (indexer_.joinable()) indexer_.join();
    if (spare_) spare_->stop();
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (!abandoned_) {
        if (spare_) spare_->remove();
        {
            // The open segment too: a clean stop with everything indexed
            // leaves the folder empty.
            std::lock_guard sl(segments_mu_);
            if (!current_.path.empty()) closed_.push_back(current_);
            current_ = Segment{};
        }
        try {
            remove_indexed_segments();
        } catch (const std::exception& e) {
            say(std::string("journal: ") + e.what());
        }
    }
}

void Journal::say(const std::string& what) const {
    if (opt_.warn) opt_.warn(what);
}

void Journal::recover() {
    std::error_code ec;
    fs::create_directories(opt_.dir, ec);
    if (ec)
        throw std::runtime_error("cannot create journal folder " + opt_.dir + ": " + ec.message());
    ::chmod(opt_.dir.c_str(), 0700);
    indexed_ = index_.indexed_upto();
    settled_ = indexed_;

    std::vector<std::string> names;
    for (const auto& de : fs::directory_iterator(opt_.dir, ec)) {
        const std::string n = de.path().filename().string();
        if (segment_first_seq(n)) names.push_back(n);
    }
    if (ec)
        throw std::runtime_error("cannot list journal folder " + opt_.dir + ": " + ec.message());
    std::sort(names.begin(), names.end());  // fixed-width hex: by first seq

    uint64_t last_seen = indexed_;
    for (size_t i = 0; i < names.size(); ++i) {
        const std::string path = opt_.dir + "/" + names[i];
        const uint64_t first_seq = *segment_first_seq(names[i]);
        const uint64_t next_first = i + 1 < names.size() ? *segment_first_seq(names[i + 1]) : 0;
        const std::string bytes = read_all(path);
        SegmentRead read = read_segment(bytes, first_seq, next_first);
        Segment seg{path, 0, read.end};
        settle_bad_data(path, bytes, read, next_first);
        for (Record& r : read.records)
            take_recovered(std::move(r), path, seg, last_seen);
        closed_.push_back(std::move(seg));
    }
    last_seq_ = last_seen;
    taken_upto_ = last_seq_;
    synced_.store(last_seq_);
    recovered_ = entries_.size();
    remove_indexed_segments();
}

void Journal::take_recovered(Record&& r, const std::string& path, Segment& seg,
                             uint64_t& last_seen) {
    if (r.seq <= last_seen && r.seq > indexed_) {
        say("journal: " + path + ": record " + std::to_string(r.seq) + " is out of order, ignored");
        return;
    }
    seg.last_seq = std::max(seg.last_seq, r.seq);
    if (r.seq <= indexed_) return;  // already in the store
    last_seen = r.seq;
    const uint64_t khash = index_.key_hash(r.source, r.key);
    const uint64_t size = kHeaderSize + r.body.size() + r.key.size() + r.id.size() + 64;
    keys_.emplace(khash, r.seq);  // a second copy keeps the first's entry
    backlog_bytes_ += size;
    entries_.push_back(Entry{std::move(r), khash, size, false});
}

void Journal::settle_bad_data(const std::string& path, const std::string& bytes,
                              const SegmentRead& read, uint64_t next_first) {
    // Seqs that cannot be read: past each bad spot whole later records
    // follow, and at the bad end of a segment a later one follows. What
    // they were cannot be told for sure: damage to acknowledged records, or
    // records never acknowledged (a hole in a write a power cut tore, a
    // failed write answered 503 whose end marker did not reach the disk),
    // or records the tables hold already (a segment not yet deleted). The
    // warning says so, and a copy of the file as found is kept.
    struct Gap {
        std::string why;
        uint64_t from, to;  // to < from: none
        std::string then;
    };
    std::vector<Gap> gaps;
    for (const auto& d : read.damage)
        gaps.push_back({d.why, d.first_lost, d.resumes - 1,
                        "the records from " + std::to_string(d.resumes) + " on (offset " +
                            std::to_string(d.resume_offset) + ") are read"});
    const bool cut_gap = !read.clean && next_first != 0 && read.next_seq < next_first;
    if (cut_gap)
        gaps.push_back({read.why, read.next_seq, next_first - 1, "the rest of the file is cut"});
    bool missing = false;
    for (const auto& g : gaps)
        missing = missing || g.from <= g.to;
    const std::string kept = missing ? keep_damaged_copy(path, bytes.size()) : std::string();
    const std::string unless =
        opt_.durable
            ? ": acknowledged deliveries lost to damage, unless they were in a write that never "
              "finished (a power cut during it, or a failed write answered 503 and logged then) "
              "or the tables hold them already"
            : ": acknowledged deliveries lost (durable: false: a power cut or damage), unless a "
              "failed write answered them 503 (logged then) or the tables hold them already";
    for (const auto& g : gaps) {
        const std::string what = g.to < g.from
                                     ? "no record is missing"
                                     : "records " + std::to_string(g.from) + " to " +
                                           std::to_string(g.to) + " cannot be read" + unless;
        say("journal: " + path + ": bad data (" + g.why + "): " + what + "; " + g.then + kept);
    }
    if (read.clean) return;
    cut_at(path, read.end);
    if (!cut_gap)
        say("journal: " + path + ": cut " + std::to_string(bytes.size() - read.end) +
            " bytes of torn tail (" + read.why +
            "): records whose sync never finished (never acknowledged), what an earlier use of a "
            "reused file left, or damage to its last records");
}

void Journal::cut_at(const std::string& path, size_t at) {
    if (::truncate(path.c_str(), static_cast<off_t>(at)) != 0)
        throw std::runtime_error("cannot cut the torn tail of " + path + ": " + errno_text(errno));
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        ::fdatasync(fd);
        ::close(fd);
    }
}

std::string Journal::keep_damaged_copy(const std::string& path, uint64_t bytes) {
    const std::string copy = path + ".damaged";
    if (opt_.room_for && !opt_.room_for(bytes))
        return "; no copy of the file kept: it would leave the filesystem below "
               "store.min_free_space";
    // The first copy is the file as found: a later start (before the
    // segment is all indexed and deleted) finds it cut, and keeps that one.
    // (In the journal's 0700 folder; 0600 like the segments.)
    std::error_code ec;
    if (fs::exists(copy, ec)) return "; the file as found was kept as " + copy + " before";
    if (!fs::copy_file(path, copy, ec) ||
        (fs::permissions(copy, fs::perms::owner_read | fs::perms::owner_write, ec), ec)) {
        fs::remove(copy, ec);
        return "; no copy of the file kept (" + copy + ": " + ec.message() + ")";
    }
    const int fd = ::open(copy.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        ::fdatasync(fd);
        ::close(fd);
    }
    return "; the file as found is kept as " + copy;
}

void Journal::open_segment(uint64_t first_seq) {
    const std::string path = opt_.dir + "/" + segment_name(first_seq);
    // The prepared (or reused) one when ready: written from offset 0 on.
    int fd = spare_ ? spare_->take(path) : -1;
    // Else a new file, appended to (not O_APPEND: the end marker is written
    // with pwrite, which that would make append too). It is not allocated
    // in advance: a file that size on every start would cost a disk that
    // a slow host never fills, and at the next start deleting it (which
    // with `discard` waits on the device) took most of a second. Once
    // nearly full it is as reusable as a prepared one.
    if (fd < 0) fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error("cannot create " + path + ": " + errno_text(errno));
    // The new name must survive a power cut before a record in it is acknowledged.
    if (opt_.durable) {
        try {
            sync_dir(opt_.dir);
        } catch (...) {
            ::close(fd);
            throw;
        }
    }
    fd_ = fd;
    std::lock_guard lk(segments_mu_);
    current_ = Segment{path, 0, 0, true};
}

Journal::Entry* Journal::entry_at(uint64_t seq) {
    if (entries_.empty()) return nullptr;
    const uint64_t front = entries_.front().record.seq;
    if (seq >= front && seq - front < entries_.size()) {
        Entry* e = &entries_[seq - front];
        if (e->record.seq == seq) return e;
    }
    // Not where a gapless run would put it: recovery can leave gaps (records
    // of a failed sync that never reached the disk). Sorted by seq.
    auto it = std::lower_bound(entries_.begin(), entries_.end(), seq,
                               [](const Entry& e, uint64_t s) { return e.record.seq < s; });
    return it != entries_.end() && it->record.seq == seq ? &*it : nullptr;
}

Journal::Admission Journal::admit(const NewEvent& e, IntakeWriter::InsertDone* async) {
    Admission a;
    // The one hash of the delivery's key: memory and store are asked by it.
    const uint64_t khash = index_.key_hash(e.source, e.idempotency_key);
    // Everything that costs is done before the lock: the record, its
    // encoding and most of its CRC. Under the lock: dedup, the seq, a copy.
    Record r;
    r.received_at_ms = e.received_at_ms;
    {
        std::lock_guard ik(ids_mu_);
        r.id = ids_.next(wall_ms());
    }
    std::string id = r.id;
    r.source = e.source;
    r.type = e.type;
    r.key = e.idempotency_key;
    r.deliveries.reserve(e.deliveries.size());
    for (const NewDelivery& d : e.deliveries)
        r.deliveries.push_back({std::string(d.plugin), d.order_key});
    r.body = e.body;
    std::string encoded;
    encoded.reserve(kHeaderSize + 64 + r.body.size() + r.key.size());
    if (!encode_unsealed(r, encoded)) {
        a.result = {InsertStatus::unavailable, {}, "the delivery is too large for the journal"};
        return a;
    }

    bool appended = false;
    std::unique_lock lk(mu_, std::defer_lock);
    for (;;) {
        // The store is asked outside the lock; records that left memory
        // for the store meanwhile (the epoch moved) make us ask again.
        const uint64_t epoch0 = epoch_.load(std::memory_order_acquire);
        std::optional<std::string> stored = index_.find_stored(e.source, e.idempotency_key, khash);
        lk.lock();
        if (stopping_) {
            a.result = {InsertStatus::unavailable, {}, "the journal is closing"};
            return a;
        }
        // Room for the callback first: once the record is in, nothing may fail.
        if (async && async_.size() == async_.capacity())
            async_.reserve(std::max<size_t>(64, 2 * async_.capacity()));
        if (auto it = keys_.find(khash); it != keys_.end()) {
            // The same key, not merely the same hash.
            Entry* en = entry_at(it->second);
            if (en && en->record.source == e.source && en->record.key == e.idempotency_key) {
                a.result = {InsertStatus::duplicate, en->record.id, {}};
                // Not synced yet: the copy is answered with the record's
                // sync, as the record is. A 200 before it, and that sync
                // failing, would lose the delivery (the sender of the copy,
                // often the same one retrying, would not send it again).
                if (en->record.seq > synced_.load(std::memory_order_acquire)) {
                    a.seq = en->record.seq;
                    a.pass = pass_of(a.seq);
                }
                break;
            }
        }
        if (stored) {
            a.result = {InsertStatus::duplicate, std::move(*stored), {}};
            return a;
        }
        if (epoch_.load(std::memory_order_acquire) != epoch0) {
            lk.unlock();
            continue;
        }
        if (entries_.size() >= opt_.max_backlog || backlog_bytes_ >= opt_.max_backlog_bytes) {
            a.result = {InsertStatus::overloaded,
                        {},
                        "intake journal backlog is full (" + std::to_string(entries_.size()) +
                            " deliveries not yet indexed)"};
            index_cv_.notify_one();  // an indexer waiting to fill a batch: it is full
            return a;
        }
        const uint64_t seq = last_seq_ + 1;
        r.seq = seq;
        seal(encoded.data(), seq);
        pending_ += encoded;
        last_seq_ = seq;
        pending_last_ = seq;
        keys_.emplace(khash, seq);
        backlog_bytes_ += encoded.size();
        entries_.push_back(Entry{std::move(r), khash, encoded.size(), false});
        ++appended_;
        appended = true;
        a.result = {InsertStatus::stored, std::move(id), {}};
        a.seq = seq;
        a.pass = passes_ + 1;  // the syncer's next pass takes pending_
        break;
    }
    if (a.seq != 0 && async) {
        // Reserved above: neither the move nor the push can throw.
        async_.push_back(AsyncAppend{a.seq, std::move(*async), std::move(a.result)});
        a.registered = true;
    }
    lk.unlock();
    if (appended) sync_cv_.notify_one();
    return a;
}

uint64_t Journal::pass_of(uint64_t seq) const {
    // The syncer publishes a pass before it takes the next, so a seq not
    // synced yet is in the pass being written or in pending_ (the next one).
    return seq <= taken_upto_ ? passes_ : passes_ + 1;
}

bool Journal::sync_failed(uint64_t seq) const {
    for (const auto& [first, last] : failed_)
        if (seq >= first && seq <= last) return true;
    return false;
}

InsertResult Journal::write_failed() {
    return {InsertStatus::unavailable, {}, "the intake journal could not be written"};
}

InsertResult Journal::append(const NewEvent& e) noexcept {
    try {
        Admission a = admit(e, nullptr);
        if (a.seq == 0) return std::move(a.result);
        wait_synced(a.seq, a.pass);
        if (failures_.load(std::memory_order_acquire) != 0) {
            std::lock_guard lk(mu_);
            if (sync_failed(a.seq)) return write_failed();
        }
        return std::move(a.result);
    } catch (const std::exception& ex) {
        return {InsertStatus::unavailable, {}, std::string("intake journal: ") + ex.what()};
    }
}

void Journal::append_async(const NewEvent& e, IntakeWriter::InsertDone done) noexcept {
    InsertResult now;
    try {
        Admission a = admit(e, &done);
        if (a.registered) return;  // the syncer answers it
        now = std::move(a.result);
    } catch (const std::exception& ex) {
        now = {InsertStatus::unavailable, {}, std::string("intake journal: ") + ex.what()};
    }
    done(std::move(now));
}

void Journal::complete_async(bool closing) {
    std::vector<AsyncAppend> ready;
    {
        std::lock_guard lk(mu_);
        if (async_.empty()) return;
        const uint64_t synced = synced_.load(std::memory_order_acquire);
        ready.reserve(async_.size());
        // In place: async_ keeps its room for the next appends.
        auto keep = async_.begin();
        for (auto it = async_.begin(); it != async_.end(); ++it) {
            if (it->seq <= synced) {
                if (sync_failed(it->seq)) it->result = write_failed();
            } else if (closing) {
                // Never happens (the syncer writes everything appended
                // before it stops), but an answer is owed all the same.
                it->result = {InsertStatus::unavailable, {}, "the journal is closing"};
            } else {
                if (keep != it) *keep = std::move(*it);
                ++keep;
                continue;
            }
            ready.push_back(std::move(*it));
        }
        async_.erase(keep, async_.end());
    }
    for (AsyncAppend& w : ready)
        w.done(std::move(w.result));
}

void Journal::syncer_loop() {
    pthread_setname_np(pthread_self(), "journal-sync");  // for top -H, perf and gdb
    std::string buf;
    std::unique_lock lk(mu_);
    for (;;) {
        sync_cv_.wait(lk, [&] { return !pending_.empty() || stopping_; });
        if (pending_.empty()) break;  // stopping, nothing left to write
        const uint64_t upto = pending_last_;
        const uint64_t first = synced_.load() + 1;
        const uint64_t pass = ++passes_;
        taken_upto_ = upto;
        if (abandoned_) {
            // As a kill leaves it: these were never written.
            pending_.clear();
            failed_.push_back({first, upto});
            failures_.fetch_add(1);
            publish_synced(upto, pass);
            break;
        }
        buf.clear();
        buf.swap(pending_);
        lk.unlock();

        std::string error;
        const auto t0 = std::chrono::steady_clock::now();
        try {
            if (fd_ >= 0 && current_.size > 0 && current_.size + buf.size() > opt_.segment_bytes) {
                ::close(fd_);
                fd_ = -1;
                std::lock_guard sl(segments_mu_);
                closed_.push_back(current_);
                current_ = Segment{};
            }
            if (fd_ < 0) open_segment(first);
            size_t done = 0;
            while (done < buf.size()) {
                const ssize_t n = ::write(fd_, buf.data() + done, buf.size() - done);
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0)
                    throw std::runtime_error("write " + current_.path + ": " +
                                             errno_text(n < 0 ? errno : EIO));
                done += static_cast<size_t>(n);
            }
            // Then the end marker (see recover()), where the next pass's
            // write() starts: pwrite leaves the file offset after the records.
            if (!write_end_marker(fd_, current_.size + done, upto + 1))
                throw std::runtime_error("write " + current_.path + ": " + errno_text(errno));
            if (opt_.durable && ::fdatasync(fd_) != 0)
                throw std::runtime_error("fdatasync " + current_.path + ": " + errno_text(errno));
            std::lock_guard sl(segments_mu_);
            current_.size += buf.size();
            current_.last_seq = upto;
            if (spare_ && current_.size > opt_.segment_bytes / 2) spare_->want();
        } catch (const std::exception& ex) {
            error = ex.what();
            // What was written may be half there, or whole but not synced: a
            // fresh segment next time, and the records of this pass are
            // answered 503, never indexed. An end marker where they start
            // keeps a later start from indexing them (best effort: the disk
            // failed once already); else it cuts what is torn, and indexes
            // what is whole.
            if (fd_ >= 0) {
                if (write_end_marker(fd_, current_.size, first) && opt_.durable)
                    (void)::fdatasync(fd_);
                ::close(fd_);
                fd_ = -1;
                std::lock_guard sl(segments_mu_);
                current_.last_seq = upto;
                closed_.push_back(current_);
                current_ = Segment{};
            }
        }

        const auto took = std::chrono::steady_clock::now() - t0;
        lk.lock();
        ++syncs_;
        synced_records_ += upto - first + 1;
        const auto took_us = static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(took).count());
        sync_us_ += took_us;
        slow_syncs_[0] += took_us > 1'000 ? 1 : 0;
        slow_syncs_[1] += took_us > 5'000 ? 1 : 0;
        slow_syncs_[2] += took_us > 20'000 ? 1 : 0;
        if (!error.empty()) {
            say("journal: " + error + "; " + std::to_string(upto - first + 1) +
                " deliveries answered 503");
            failed_.push_back({first, upto});
            failures_.fetch_add(1, std::memory_order_release);
            for (uint64_t s = first; s <= upto; ++s)
                if (Entry* en = entry_at(s)) {
                    en->failed = true;
                    if (auto it = keys_.find(en->khash); it != keys_.end() && it->second == s)
                        keys_.erase(it);
                }
        }
        lk.unlock();
        // Outside the lock: the woken appends do not queue behind it, and
        // new appends are not held up by the wake-ups.
        publish_synced(upto, pass);
        // Through the lock: the indexer checks `synced_` under it, so the
        // wake-up cannot fall between its check and its wait.
        { std::lock_guard g(mu_); }
        index_cv_.notify_one();
        complete_async(false);
        lk.lock();
    }
    lk.unlock();
    complete_async(false);  // an abandoned pass's
}

void Journal::indexer_loop() {
    pthread_setname_np(pthread_self(), "journal-index");
    std::unique_lock lk(mu_);
    auto indexable = [&] {
        return !entries_.empty() &&
               entries_.front().record.seq <= synced_.load(std::memory_order_acquire);
    };
    for (;;) {
        index_cv_.wait(lk, [&] { return abandoned_ || stopping_ || (!paused_ && indexable()); });
        if (abandoned_) return;
        if (!indexable()) {
            if (stopping_) return;
            continue;
        }
        if (last_batch_ >= kLoadedBatch && opt_.index_min_batch > 1) {
            // Under load: let the batch fill (the syncer wakes us per pass),
            // but never past half the backlog's bounds, which would refuse
            // appends before the batch is full.
            const size_t min_batch = std::min({opt_.index_min_batch, opt_.index_batch,
                                               std::max<size_t>(opt_.max_backlog / 2, 1)});
            auto filled = [&] {
                const uint64_t synced = synced_.load(std::memory_order_acquire);
                const uint64_t first = entries_.front().record.seq;
                return (synced >= first && synced - first + 1 >= min_batch) ||
                       backlog_bytes_ >= opt_.max_backlog_bytes / 2;
            };
            index_cv_.wait_for(lk, opt_.index_max_wait, [&] {
                return abandoned_ || stopping_ || draining_ > 0 || filled();
            });
            if (abandoned_) return;
            if (paused_ && !stopping_) continue;
        }
        std::vector<const Record*> batch;
        std::vector<uint64_t> hashes;
        uint64_t upto = 0;
        size_t n = 0;
        const uint64_t synced = synced_.load(std::memory_order_acquire);
        for (const Entry& en : entries_) {
            if (en.record.seq > synced || n == opt_.index_batch) break;
            ++n;
            upto = en.record.seq;
            if (en.failed) continue;
            batch.push_back(&en.record);
            hashes.push_back(en.khash);
        }
        lk.unlock();
        std::string error;
        try {
            index_.index(batch, hashes, upto);
        } catch (const std::exception& ex) {
            error = ex.what();
        }
        lk.lock();
        if (!error.empty()) {
            ++index_failures_;
            drained_cv_.notify_all();
            say("journal: indexing " + std::to_string(n) + " deliveries failed: " + error +
                (stopping_ ? "; they stay in the journal for the next start" : "; retrying"));
            if (stopping_) return;
            index_cv_.wait_for(lk, opt_.retry_pause, [&] { return abandoned_ || stopping_; });
            continue;
        }
        last_batch_ = n;  // a success only: a retry waits its pause, not a batch
        // In slices, the lock let go between them: appends wait for one
        // slice at most, and the records are freed outside the lock.
        std::vector<Entry> gone;
        for (size_t done = 0; done < n;) {
            const size_t slice = std::min<size_t>(n - done, 256);
            gone.clear();
            gone.reserve(slice);
            for (size_t i = 0; i < slice; ++i) {
                Entry& en = entries_.front();
                if (!en.failed) {
                    auto it = keys_.find(en.khash);
                    if (it != keys_.end() && it->second == en.record.seq) keys_.erase(it);
                }
                backlog_bytes_ -= std::min(backlog_bytes_, en.bytes);
                gone.push_back(std::move(en));
                entries_.pop_front();
            }
            done += slice;
            if (done == n) indexed_ = upto;
            // Every removal is seen by an append that asked the store
            // before it: the epoch moves with each slice.
            epoch_.fetch_add(1, std::memory_order_release);
            lk.unlock();
            gone.clear();
            lk.lock();
        }
        lk.unlock();
        try {
            remove_indexed_segments();
        } catch (const std::exception& ex) {
            say(std::string("journal: ") + ex.what());
        }
        lk.lock();
        settled_ = upto;  // after the deletions: a drained journal holds no old segment
        drained_cv_.notify_all();
    }
}

void Journal::remove_indexed_segments() {
    uint64_t indexed;
    {
        std::lock_guard lk(mu_);
        indexed = indexed_;
    }
    // Segments without a record (cut to nothing at recovery, or a spare
    // renamed in just before a kill) go without a sync; the others only once
    // the index transactions are durable.
    bool want_sync = false;
    {
        std::lock_guard sl(segments_mu_);
        bool any = false;
        for (const Segment& s : closed_) {
            if (s.last_seq > indexed) continue;
            any = true;
            want_sync = want_sync || s.last_seq != 0;
        }
        if (!any) return;
    }
    // The index transactions were not synced (see Index::index): until they
    // are, the segments are the only durable copy of their records.
    bool synced = false;
    if (want_sync) {
        try {
            index_.sync_indexed();
            synced = true;
            sync_error_.clear();
        } catch (const std::exception& ex) {
            // Once per distinct error: this runs after every batch.
            if (sync_error_ != ex.what())
                say(std::string("journal: cannot sync the indexed records (their segments are "
                                "kept): ") +
                    ex.what());
            sync_error_ = ex.what();
        }
    }
    std::vector<Segment> gone;
    {
        std::lock_guard sl(segments_mu_);
        auto keep = std::remove_if(closed_.begin(), closed_.end(), [&](const Segment& s) {
            if (s.last_seq > indexed || (s.last_seq != 0 && !synced)) return false;
            // Never the segment in use (belt and braces: a recovered empty
            // one, which could share its name, goes at recovery).
            if (s.path == current_.path) return true;
            gone.push_back(s);
            return true;
        });
        closed_.erase(keep, closed_.end());
    }
    for (const Segment& s : gone) {
        // Kept as the next segment rather than deleted when no spare is
        // ready (SpareSegment::offer): nothing to write ahead of the roll.
        if (spare_ && s.reusable && spare_->offer(s.path)) continue;
        if (::unlink(s.path.c_str()) != 0 && errno != ENOENT)
            say("journal: cannot delete " + s.path + ": " + errno_text(errno));
    }
}

bool Journal::drain(std::chrono::milliseconds timeout) {
    uint64_t target;
    {
        std::lock_guard lk(mu_);
        target = last_seq_;
    }
    return drain_upto(target, timeout);
}

bool Journal::drain_upto(uint64_t target, std::chrono::milliseconds timeout) {
    std::unique_lock lk(mu_);
    ++draining_;
    index_cv_.notify_all();
    const uint64_t failures = index_failures_;
    drained_cv_.wait_for(lk, timeout, [&] {
        return abandoned_ || settled_ >= target || index_failures_ != failures;
    });
    --draining_;
    return abandoned_ || settled_ >= target;
}

Journal::Stats Journal::stats() const {
    Stats s;
    {
        std::lock_guard lk(mu_);
        s.backlog = entries_.size();
        s.backlog_bytes = backlog_bytes_;
        s.appended = appended_;
        s.indexed_upto = indexed_;
        s.syncs = syncs_;
        s.synced_records = synced_records_;
        s.sync_us = sync_us_;
        s.slow_syncs = slow_syncs_;
        s.recovered = recovered_;
    }
    std::lock_guard sl(segments_mu_);
    s.segments = closed_.size() + (current_.path.empty() ? 0 : 1);
    return s;
}

const Journal::Entry* Journal::held(std::string_view id) const {
    for (const Entry& en : entries_)
        if (!en.failed && en.record.id == id && en.record.seq <= synced_.load()) return &en;
    return nullptr;
}

std::optional<uint64_t> Journal::seq_of(std::string_view id) const {
    std::lock_guard lk(mu_);
    if (const Entry* en = held(id)) return en->record.seq;
    return std::nullopt;
}

std::optional<Record> Journal::find(std::string_view id) const {
    std::lock_guard lk(mu_);
    if (const Entry* en = held(id)) return en->record;
    return std::nullopt;
}

std::vector<uint64_t> Journal::held_seqs() const {
    std::lock_guard lk(mu_);
    const uint64_t synced = synced_.load();
    std::vector<uint64_t> out;
    out.reserve(entries_.size());
    for (const Entry& en : entries_)
        if (!en.failed && en.record.seq <= synced) out.push_back(en.record.seq);
    return out;
}

void Journal::visit_newest(const std::function<bool(const Record&)>& fn) const {
    std::lock_guard lk(mu_);
    const uint64_t synced = synced_.load();
    for (auto it = entries_.rbegin(); it != entries_.rend(); ++it)
        if (!it->failed && it->record.seq <= synced && !fn(it->record)) return;
}

void Journal::pause_indexer(bool paused) {
    {
        std::lock_guard lk(mu_);
        paused_ = paused;
    }
    index_cv_.notify_all();
}

size_t Journal::key_buckets() const {
    std::lock_guard lk(mu_);
    return keys_.bucket_count();
}

void Journal::abandon() {
    {
        std::lock_guard lk(mu_);
        abandoned_ = true;
        stopping_ = true;
    }
    sync_cv_.notify_all();
    index_cv_.notify_all();
    if (syncer_.joinable()) syncer_.join();
    if (indexer_.joinable()) indexer_.join();
    complete_async(true);
}

}  // namespace clayhook::journal
