#pragma once

namespace clayhook {

// True when `fd` is the stream systemd connected to the journal: the
// environment variable JOURNAL_STREAM holds "<device>:<inode>" and they are
// fstat(fd)'s st_dev and st_ino (systemd.exec(5), "JOURNAL_STREAM"). A stream
// redirected elsewhere after systemd set it keeps the variable but not the
// identity, so both are compared. False when the variable is unset or
// malformed, or `fd` cannot be stat'ed.
bool stream_is_journal(int fd);

}  // namespace clayhook
