// `clayhook backup [--config FILE] OUT`: a consistent copy of the SQLite
// store, taken while the host runs (VACUUM INTO: one read transaction, so one
// point in time; compacted). The copy is created private (0600) and checked
// (integrity_check) before the command says it is done. PostgreSQL has its
// own tools (pg_dump), named in the error and in docs/operations.md.
// With store.journal the segments still holding records are copied first,
// into OUT.journal/: whatever was acknowledged before the command started is
// then in the copy's tables or in those segments, and a host started on the
// copy indexes the rest.
#include "cli/Args.h"
#include "cli/Commands.h"
#include "cli/DefaultConfig.h"
#include "config/ConfigLoader.h"
#include "store/journal/JournalFormat.h"
#include "store/journal/SegmentFile.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <ostream>
#include <string>

namespace clayhook {

namespace {

using namespace cli;

struct Db {
    sqlite3* db = nullptr;
    ~Db() { sqlite3_close(db); }
};

int64_t count(sqlite3* db, const char* sql) {
    sqlite3_stmt* s = nullptr;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
}

// Copies the journal's segments (a segment deleted meanwhile was indexed,
// and is in the tables the copy reads next). Returns the records copied.
int64_t copy_journal(const std::string& from, const std::string& to, std::string& error) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(from, ec)) return 0;
    if (::mkdir(to.c_str(), 0700) != 0) {
        error = "cannot create " + to + ": " + std::strerror(errno);
        return -1;
    }
    int64_t records = 0;
    for (const auto& e : fs::directory_iterator(from, ec)) {
        // Segments only: not the next one prepared in advance (zeros, no
        // record), nor a damaged one's copy (`.damaged`, kept for a person).
        const auto first = journal::segment_first_seq(e.path().filename().string());
        if (!first) continue;
        // To its end: the segment in use grows meanwhile.
        auto file = journal::read_segment_file(e.path().string(), error);
        if (!file && error.empty()) continue;  // indexed and deleted since the listing
        if (!file) {
            fs::remove_all(to, ec);  // created above: ours
            return -1;
        }
        const std::string& bytes = file->bytes;
        // Indexed, and reused under a later segment's name (or deleted)
        // while read: what was read may be that later segment's records. Its
        // records were indexed before, so the tables copied next have them.
        struct stat after {};
        if (::stat(e.path().c_str(), &after) != 0 || after.st_ino != file->ino ||
            after.st_dev != file->dev)
            continue;
        // Only this use's records: a reused segment file still holds an
        // earlier use's after them. Read as a start reads it, past damage
        // that whole records follow (journal::read_segment).
        const auto read = journal::read_segment(bytes, *first);
        const std::string out_path = to + "/" + e.path().filename().string();
        int fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || ::write(fd, bytes.data(), read.end) != static_cast<ssize_t>(read.end) ||
            ::fsync(fd) != 0) {
            error = "cannot write " + out_path + ": " + std::strerror(errno);
            if (fd >= 0) ::close(fd);
            fs::remove_all(to, ec);  // created above: ours
            return -1;
        }
        ::close(fd);
        records += static_cast<int64_t>(read.records.size());
    }
    return records;
}

}  // namespace

int backup_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    Args a;
    if (auto problem = parse_args(args, 1, {"--config"}, {}, a); !problem.empty())
        return usage_error(err, "backup", problem, command_usage("backup"));
    if (a.positional.size() != 1)
        return usage_error(err, "backup", "give the file to write the copy to",
                           command_usage("backup"));
    const std::string target = a.positional[0];
    Config config;
    try {
        config = load_config(a.get("--config").value_or(default_config_file()),
                             LoadOptions::with_bundled());
    } catch (const std::exception& e) {
        err << "clayhook backup: " << e.what() << "\n";
        return kExitFailed;
    }
    if (config.store.engine != "sqlite") {
        err << "clayhook backup: the store is PostgreSQL: back it up with pg_dump (see "
               "docs/operations.md, \"Backups\")\n";
        return kExitFailed;
    }
    const std::string source = config.store.path;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(source, ec)) {
        err << "clayhook backup: no store at " << source << "\n";
        return kExitFailed;
    }
    // Created here, empty and private: VACUUM INTO fills an empty file, and
    // would otherwise create it with the default mode.
    int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        err << "clayhook backup: cannot create " << target << ": " << std::strerror(errno)
            << (errno == EEXIST ? " (it is never overwritten)" : "") << "\n";
        return kExitFailed;
    }
    ::close(fd);
    const std::string journal_copy = target + ".journal";
    bool journal_copied = false;  // ours to remove on failure
    auto fail = [&](const std::string& why) {
        ::unlink(target.c_str());
        std::error_code ignored;
        if (journal_copied) std::filesystem::remove_all(journal_copy, ignored);
        err << "clayhook backup: " << why << "\n";
        return kExitFailed;
    };
    std::string journal_error;
    const int64_t journal_records = copy_journal(source + ".journal", journal_copy, journal_error);
    if (journal_records < 0) return fail(journal_error);
    journal_copied = std::filesystem::is_directory(source + ".journal", ec);
    {
        Db src;
        // Read-write without create: a reader of a WAL database needs its
        // -shm; VACUUM INTO itself writes nothing to the source.
        if (sqlite3_open_v2(source.c_str(), &src.db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK)
            return fail("cannot open " + source + ": " + sqlite3_errmsg(src.db));
        sqlite3_busy_timeout(src.db, 10'000);
        sqlite3_stmt* s = nullptr;
        if (sqlite3_prepare_v2(src.db, "VACUUM INTO ?1", -1, &s, nullptr) != SQLITE_OK)
            return fail(std::string("cannot copy: ") + sqlite3_errmsg(src.db));
        sqlite3_bind_text(s, 1, target.c_str(), -1, SQLITE_TRANSIENT);
        const int rc = sqlite3_step(s);
        sqlite3_finalize(s);
        if (rc != SQLITE_DONE) return fail("cannot copy " + source + ": " + sqlite3_errmsg(src.db));
    }
    Db copy;
    if (sqlite3_open_v2(target.c_str(), &copy.db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK)
        return fail("cannot open the copy: " + std::string(sqlite3_errmsg(copy.db)));
    sqlite3_stmt* s = nullptr;
    std::string check;
    if (sqlite3_prepare_v2(copy.db, "PRAGMA integrity_check", -1, &s, nullptr) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        check = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    if (check != "ok") return fail("the copy failed its integrity check: " + check);
    struct stat st {};
    ::stat(target.c_str(), &st);
    out << "backed up " << source << " to " << target << ": "
        << count(copy.db, "SELECT count(*) FROM events") << " events, "
        << count(copy.db, "SELECT count(*) FROM deliveries") << " deliveries, " << st.st_size
        << " bytes (integrity ok)\n";
    if (std::filesystem::is_directory(journal_copy, ec))
        out << "journal segments copied to " << journal_copy << " (" << journal_records
            << " records; those not in the copy's tables are indexed when a host starts on "
               "it): restore both together\n";
    return kExitOk;
}

}  // namespace clayhook
