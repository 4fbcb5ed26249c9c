#pragma once

// The intake journal: the SQLite engine's write path for new deliveries.
//
// A delivery is appended to a segment file as one checksummed record; a
// syncer thread writes whatever records piled up since its last pass and
// fdatasyncs them once for the lot; append() returns (and the sender is
// answered 200) only after the sync that covers its record. An indexer thread
// then moves synced records into the store behind it (the Index role) in
// large transactions, together with the journal position they reach, so a
// record is indexed exactly once even across a crash. Until then the record
// is held in memory: dedup is answered from there for what is not yet
// indexed, and from the store for the rest. Segment files whose records are
// all indexed are deleted.
//
// At start the segments are read back: a torn or half-written tail (records
// that were never acknowledged, since their sync did not finish) is cut off
// and every valid record past the store's position is indexed again. Whole
// records past a bad spot are read too; the seqs missing there are said,
// and the file as found is kept as <segment>.damaged (read_segment).

#include "store/Store.h"
#include "store/journal/JournalFormat.h"
#include "store/journal/SpareSegment.h"

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace clayhook::journal {

// What the journal needs from the store that indexes its records.
class Index {
  public:
    virtual ~Index() = default;
    // The highest journal seq whose record is in the store (0: none yet).
    virtual uint64_t indexed_upto() = 0;
    // The store's dedup hash of (source, idempotency key): the journal keys
    // its records in memory by it too, so the intake hashes a delivery once.
    virtual uint64_t key_hash(std::string_view source, std::string_view key) const = 0;
    // The id of the stored event with this (source, idempotency key), whose
    // key_hash() is `hash`, if any.
    virtual std::optional<std::string> find_stored(std::string_view source, std::string_view key,
                                                   uint64_t hash) = 0;
    // Stores the records, in order, and records `upto` as indexed, in one
    // transaction. `hashes[i]` is key_hash() of records[i], computed once at
    // append. Throws std::runtime_error when nothing was stored. The
    // transaction need not be durable yet when it returns: the records are
    // still in their segments, which stay until sync_indexed().
    virtual void index(const std::vector<const Record*>& records,
                       const std::vector<uint64_t>& hashes, uint64_t upto) = 0;
    // Makes every transaction index() has committed durable: after it
    // returns, a power cut loses none of them. Called before segments whose
    // records are all indexed are deleted. Throws std::runtime_error.
    virtual void sync_indexed() = 0;
};

struct Options {
    std::string dir;               // created 0700 when missing
    bool durable = true;           // fdatasync before answering; false: write() only
    size_t max_backlog = 200'000;  // records not yet indexed before appends get 503
    // Their encoded bytes, likewise. Each waiting record is also held in
    // memory (about twice its encoded size), so this bounds the memory too.
    uint64_t max_backlog_bytes = 64ull << 20;
    uint64_t segment_bytes = 64ull << 20;  // a segment is closed past this size
    size_t index_batch = 16384;            // records per indexing transaction at most
    // Under load (the last transaction took at least Journal::kLoadedBatch records),
    // the indexer waits until `index_min_batch` records are synced, or
    // `index_max_wait` passed, before its next transaction: one transaction
    // of many records writes far fewer pages per record (the dedup table's
    // leaves are shared) than many small ones. A light load is indexed at
    // once, and drain() never waits for it.
    size_t index_min_batch = 16384;
    std::chrono::milliseconds index_max_wait{250};
    std::chrono::milliseconds retry_pause{1000};   // after a failed indexing transaction
    std::function<void(const std::string&)> warn;  // recovery and failures; may be empty
    bool start_paused = false;  // tests: the indexer starts paused (see pause_indexer)
    // With `durable`: the next segment is prepared (SpareSegment) once the
    // one in use is half full, so that records overwrite blocks written in
    // advance. A segment opened without a spare ready is appended to.
    bool preallocate = true;
    // Asked before a spare's zeros are written (SpareSegment) and before a
    // damaged segment's copy is kept at start; may be empty.
    std::function<bool(uint64_t bytes)> room_for;
};

class Journal {
  public:
    // A transaction of at least this many records means load (Options::index_min_batch).
    static constexpr size_t kLoadedBatch = 256;
    // The key map is sized up front for this many records at most (about
    // 8 bytes each); a larger max_backlog grows it as it fills.
    static constexpr size_t kReservedKeys = 1'000'000;

    // Opens the folder, recovers what it holds (see above) and starts the
    // syncer and the indexer. Throws std::runtime_error naming the path.
    Journal(Options options, Index& index);
    // Stops taking appends, indexes every synced record, stops the threads.
    ~Journal();
    Journal(const Journal&) = delete;
    Journal& operator=(const Journal&) = delete;

    // Durable (synced) and answered as the store's insert(): stored with a
    // new id, duplicate with the earlier id, overloaded while the backlog is
    // full, unavailable when the segment could not be written or synced.
    InsertResult append(const NewEvent& e) noexcept;
    // As append(), without waiting for the sync: `done` gets exactly what
    // append() would have returned. At once (inside the call) when that is
    // known at once (a duplicate of a synced record, overloaded, closing,
    // too large); else on the syncer thread, after the pass that decides it
    // (the record's own, or for a duplicate the pass of the record it
    // copies). Never under the journal's locks. The destructor and abandon()
    // answer every registered one: stored when its sync covered it, else
    // unavailable.
    void append_async(const NewEvent& e, IntakeWriter::InsertDone done) noexcept;

    // Waits until everything appended before the call is indexed. False
    // when `timeout` passed first, or an indexing transaction failed
    // meanwhile (the indexer retries after Options::retry_pause; the records
    // stay in the journal): a store that cannot be written to does not hold
    // its callers (a stop, a kill) for the whole timeout.
    bool drain(std::chrono::milliseconds timeout = std::chrono::seconds(30));
    // As drain(), up to the record with this seq only (Record::seq, from
    // find()): a later backlog is not waited for.
    bool drain_upto(uint64_t seq, std::chrono::milliseconds timeout = std::chrono::seconds(30));

    struct Stats {
        uint64_t backlog = 0;         // records synced or pending, not yet indexed
        uint64_t backlog_bytes = 0;   // their encoded size
        uint64_t appended = 0;        // records appended since start
        uint64_t indexed_upto = 0;    // the store's journal position
        uint64_t syncs = 0;           // fdatasync (or write) passes since start
        uint64_t synced_records = 0;  // records those passes wrote
        uint64_t sync_us = 0;         // time they took (write and fdatasync), in µs
        // Passes that took over 1, 5 and 20 ms: every delivery in a pass
        // waits for all of it, so these are the intake's latency tail.
        std::array<uint64_t, 3> slow_syncs{};
        uint64_t recovered = 0;  // records found unindexed at start
        uint64_t segments = 0;   // segment files on disk
    };
    Stats stats() const;

    // A record not yet indexed, by event id. For the admin API and
    // `clayhook events`.
    std::optional<Record> find(std::string_view id) const;
    // Its seq alone (for drain_upto): the body is not copied under the lock
    // the appends take.
    std::optional<uint64_t> seq_of(std::string_view id) const;
    // The seqs of the synced records held now, in order. Taken before the
    // store's tables are read, those past the position that read finds are
    // the ones its tables lack (a record leaves only once committed).
    std::vector<uint64_t> held_seqs() const;
    // Calls `fn` on the synced records not yet indexed, newest first, until
    // it returns false. Under the journal's lock: appends wait meanwhile, so
    // `fn` only looks and copies what it keeps (no record is copied here).
    void visit_newest(const std::function<bool(const Record&)>& fn) const;

    // Test hooks. pause_indexer: records stay in the journal (appends still
    // succeed). abandon: the threads stop as a SIGKILL would leave things
    // (nothing more indexed, files as they are); the destructor then only
    // joins.
    void pause_indexer(bool paused);
    void abandon();
    // Test hook: the buckets of the in-memory key map (see the constructor).
    size_t key_buckets() const;

  private:
    struct Entry {
        Record record;
        uint64_t khash = 0;  // Index::key_hash(source, key): its key in keys_
        uint64_t bytes = 0;
        bool failed = false;  // its sync failed: answered 503, never indexed
    };
    struct Segment {
        std::string path;
        uint64_t last_seq = 0;  // 0: holds no record
        uint64_t size = 0;      // its records' bytes (the end marker after them not counted)
        // Opened by this run, so its seqs and any earlier use's are this
        // run's: offered as the spare once indexed. Never one found at start
        // (SpareSegment::offer).
        bool reusable = false;
    };
    // What admit() decided for one append.
    struct Admission {
        // The answer, final when seq is 0; else the answer once the sync of
        // record `seq` succeeded (a failed one makes it unavailable).
        InsertResult result;
        uint64_t seq = 0;
        uint64_t pass = 0;        // the sync pass that covers seq
        bool registered = false;  // the async callback waits in async_ for seq
    };
    // An append_async() waiting for the sync pass that decides it.
    struct AsyncAppend {
        uint64_t seq = 0;
        IntakeWriter::InsertDone done;
        InsertResult result;  // the answer when seq's sync succeeds
    };

    void recover();
    // recover()'s steps: one record read back from `path` (kept unless
    // indexed already or out of order); the seqs that cannot be read in a
    // segment said (with what else they may have been), the file as found
    // kept as `path`.damaged when any are missing, and a torn tail cut.
    void take_recovered(Record&& r, const std::string& path, Segment& seg, uint64_t& last_seen);
    void settle_bad_data(const std::string& path, const std::string& bytes, const SegmentRead& read,
                         uint64_t next_first);
    void cut_at(const std::string& path, size_t at);
    // The phrase the warning ends with: kept, kept before, or why not.
    std::string keep_damaged_copy(const std::string& path, uint64_t bytes);
    void open_segment(uint64_t first_seq);  // under nothing: syncer or constructor
    // The synced, unfailed record with this event id (under mu_).
    const Entry* held(std::string_view id) const;
    void syncer_loop();
    void indexer_loop();
    void remove_indexed_segments();
    void say(const std::string& what) const;
    // append()'s and append_async()'s common part: dedup, backlog limits, a
    // seq, the record into pending_. With `async`, a pending answer's
    // callback is moved into async_ (under mu_, so the syncer cannot miss it).
    Admission admit(const NewEvent& e, IntakeWriter::InsertDone* async);
    // The sync pass that writes `seq` (not synced yet). Under mu_.
    uint64_t pass_of(uint64_t seq) const;
    // Under mu_: true when seq's sync failed.
    bool sync_failed(uint64_t seq) const;
    static InsertResult write_failed();
    // Calls the async_ callbacks whose seq is synced (all of them with
    // `closing`: those not synced get unavailable), outside mu_.
    void complete_async(bool closing);
    void wait_synced(uint64_t seq, uint64_t pass);
    void publish_synced(uint64_t upto, uint64_t pass);
    Entry* entry_at(uint64_t seq);  // under mu_; nullptr when not held

    Options opt_;
    Index& index_;
    EventIdGenerator ids_;

    mutable std::mutex mu_;
    std::condition_variable sync_cv_;   // syncer: pending bytes or stopping
    std::condition_variable index_cv_;  // indexer: synced records, unpaused, stopping
    std::condition_variable drained_cv_;
    std::deque<Entry> entries_;  // unindexed, in seq order; front is indexed_ + 1 or later
    std::unordered_map<uint64_t, uint64_t> keys_;  // key hash -> seq of its entry
    std::string pending_;                          // encoded, not yet written
    uint64_t pending_last_ = 0;                    // seq of the last record in pending_
    uint64_t last_seq_ = 0;                        // the newest seq handed out
    uint64_t indexed_ = 0;
    uint64_t settled_ = 0;         // indexed, and its segments deleted: what drain() waits for
    uint64_t index_failures_ = 0;  // failed indexing transactions: a drain ends at the next one
    uint64_t backlog_bytes_ = 0;
    uint64_t appended_ = 0, syncs_ = 0, recovered_ = 0;
    uint64_t synced_records_ = 0, sync_us_ = 0;
    std::array<uint64_t, 3> slow_syncs_{};
    bool stopping_ = false, abandoned_ = false, paused_ = false;
    size_t last_batch_ = 0;  // records in the indexer's last transaction
    int draining_ = 0;       // drain() calls waiting: the indexer does not wait to fill a batch
    std::vector<std::pair<uint64_t, uint64_t>> failed_;  // seq ranges whose sync failed
    std::atomic<uint64_t> failures_{0};
    std::atomic<uint64_t> epoch_{0};              // bumped when records leave memory for the store
    std::atomic<uint64_t> synced_{0};             // every seq up to here has its outcome
    std::atomic<uint32_t> sync_gen_[2] = {0, 0};  // futex words, by pass parity
    static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t));
    uint64_t passes_ = 0;             // sync passes started (under mu_)
    uint64_t taken_upto_ = 0;         // the last seq the latest pass took (under mu_)
    std::vector<AsyncAppend> async_;  // append_async() answers waiting for a sync (under mu_)
    std::mutex ids_mu_;               // ids_

    // The syncer's own (the constructor's before it starts); closed is read
    // by the indexer under segments_mu_.
    int fd_ = -1;
    Segment current_;
    mutable std::mutex segments_mu_;
    std::vector<Segment> closed_;

    std::unique_ptr<SpareSegment> spare_;  // with durable and preallocate
    // The last sync_indexed() failure, said once (remove_indexed_segments:
    // the constructor, the indexer, the destructor, one at a time).
    std::string sync_error_;
    std::thread syncer_, indexer_;
};

}  // namespace clayhook::journal
