#pragma once

// The intake journal's next segment file, prepared ahead of need: the
// segment's full size in zeros, written and fdatasynced before it is used.
//
// Appending to a file changes its size and allocates blocks, so every
// fdatasync of an appended segment commits the filesystem's journal too; on
// ext4 (data=ordered) that commit first writes out other files' newly
// allocated dirty data, such as the SQLite checkpoints'. Records written over
// blocks already allocated and written change no metadata, and their
// fdatasync flushes only their own data: the journal's sync passes took half
// the time on this project's benchmark (bench/README.md).
//
// One spare at a time, "spare.tmp" while being written by this unit's thread
// ("journal-spare"), "spare.seg" once ready; the journal renames it to its
// next segment's name when it rolls. Both names are never segment names.
//
// Writing zeros is only the way to get the first spare. After that the
// journal offers each segment it opened itself and is done with (every
// record indexed and durable) instead of deleting it: its blocks are
// allocated and written just as well, and reusing it writes nothing. Its
// old records stay after the new ones until written over; the end marker
// after each write (and their lower seqs) keep them from being read as
// records (JournalFormat.h).

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace clayhook::journal {

class SpareSegment {
  public:
    // Deletes what a previous run left in `dir` (a spare, finished or not)
    // and starts the thread, idle until want(). `warn` (may be empty) hears
    // a spare that could not be prepared. `room_for` (may be empty) is asked
    // before zeros are written: false (the filesystem would be left below
    // store.min_free_space) prepares none, said through `warn`.
    SpareSegment(std::string dir, uint64_t bytes, std::function<void(const std::string&)> warn,
                 std::function<bool(uint64_t)> room_for = {});
    // stop(). The ready spare stays on disk: remove() deletes it.
    ~SpareSegment();
    SpareSegment(const SpareSegment&) = delete;
    SpareSegment& operator=(const SpareSegment&) = delete;

    // Prepares a spare unless one is ready or being written. Cheap: called
    // after every sync pass past half a segment. After a failed preparation
    // it does nothing until the next take(): one try, and one warning, per
    // segment (a full disk would otherwise be written to and warned about
    // after every pass). True when it asked the thread for one.
    bool want();
    // The ready spare, renamed to `path` and opened for writing at offset 0
    // (the caller owns the descriptor and syncs the folder); -1 when none is
    // ready, or the rename or open failed (said through `warn`). Called at
    // each roll, ready or not: it also allows the next preparation.
    int take(const std::string& path);
    // Takes `path`, a segment file the journal is done with, as the spare:
    // renamed to spare.seg, nothing written. False, the file left as it is,
    // when a spare is ready or being prepared, after stop(), when the file
    // is smaller than min_reuse_bytes() (writes past its end are appends,
    // which change its size), or the rename fails.
    bool offer(const std::string& path);
    // 15/16 of a segment: one appended to from empty is closed once the next
    // pass would take it past the full size, so with passes small against a
    // segment it is that full. (One closed sooner, by a large pass or a
    // failed one, is deleted instead.)
    uint64_t min_reuse_bytes() const { return bytes_ - bytes_ / 16; }
    // Stops the thread; a spare being written is dropped. Idempotent.
    void stop();
    // Deletes the spare files. After stop().
    void remove();

    bool ready() const;
    // The last preparation failed (want() waits for take()).
    bool failed() const;
    static bool is_spare_name(const std::string& name);

  private:
    void run();
    bool prepare();  // true when spare.seg is ready

    std::string dir_, tmp_path_, ready_path_;
    uint64_t bytes_;
    std::function<void(const std::string&)> warn_;
    std::function<bool(uint64_t)> room_for_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    // renaming_: take() or offer() is renaming spare.seg, outside mu_.
    // failed_: the last preparation failed; want() waits for take().
    bool wanted_ = false, ready_ = false, stopping_ = false, renaming_ = false, failed_ = false;
    std::thread thread_;
};

}  // namespace clayhook::journal
