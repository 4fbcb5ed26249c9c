#include "crash/FatalSignal.h"

#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace clayhook::fatal {

namespace {

constexpr int kSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
constexpr size_t kMaxIds = 32;
constexpr size_t kNameMax = 96;

struct CallSlot {
    volatile bool active = false;
    char plugin[kNameMax] = {0};
    int64_t ids[kMaxIds] = {0};
    size_t count = 0;  // recorded
    size_t total = 0;  // in the call
};
thread_local CallSlot t_call;

struct AltStack {
    void* mem = nullptr;
    ~AltStack() {
        if (mem == nullptr) return;
        stack_t off{};
        off.ss_flags = SS_DISABLE;
        ::sigaltstack(&off, nullptr);
        std::free(mem);
    }
};
thread_local AltStack t_altstack;

// Written before the handlers are installed, read only by the handler.
char g_record[4096] = {0};
char g_record_tmp[4200] = {0};  // g_record + ".tmp": written, then renamed over it
char g_owner[256] = {0};
char g_component[32] = "host";
struct sigaction g_previous[sizeof kSignals / sizeof kSignals[0]];
std::atomic<bool> g_installed{false};
// Lock-free, so usable in a handler: the first faulting thread writes the
// line and the record; another that faults meanwhile waits for it (bounded).
std::atomic<int> g_writer{0};
std::atomic<bool> g_written{false};

// A fixed buffer filled without allocating: everything the handler calls is
// async-signal-safe (write, open, close, clock_gettime, sigaction, raise).
struct Buf {
    char data[2048];
    size_t n = 0;
    void put(const char* s) {
        while (*s && n < sizeof data - 1)
            data[n++] = *s++;
    }
    void put(const char* s, size_t len) {
        for (size_t i = 0; i < len && n < sizeof data - 1; ++i)
            data[n++] = s[i];
    }
    void num(int64_t v, int width = 0) {
        char tmp[24];
        size_t k = 0;
        const bool neg = v < 0;
        uint64_t u = neg ? static_cast<uint64_t>(-(v + 1)) + 1 : static_cast<uint64_t>(v);
        do {
            tmp[k++] = static_cast<char>('0' + u % 10);
            u /= 10;
        } while (u != 0);
        while (static_cast<int>(k) < width)
            tmp[k++] = '0';
        if (neg) put("-");
        while (k > 0 && n < sizeof data - 1)
            data[n++] = tmp[--k];
    }
    // A logfmt value: plain when safe, else quoted with " and \ escaped.
    void value(const char* s) {
        bool plain = *s != '\0';
        for (const char* p = s; *p; ++p)
            if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\') plain = false;
        if (plain) return put(s);
        put("\"");
        for (const char* p = s; *p; ++p) {
            if (*p == '"' || *p == '\\') put("\\");
            if (static_cast<unsigned char>(*p) >= ' ') put(p, 1);
        }
        put("\"");
    }
};

const char* signal_name(int sig) {
    switch (sig) {
        case SIGSEGV:
            return "SIGSEGV";
        case SIGBUS:
            return "SIGBUS";
        case SIGILL:
            return "SIGILL";
        case SIGFPE:
            return "SIGFPE";
        case SIGABRT:
            return "SIGABRT";
    }
    return "signal";
}

// Days since 1970-01-01 → civil date (Howard Hinnant's algorithm): gmtime_r
// is not async-signal-safe.
void civil(int64_t days, int64_t& y, unsigned& m, unsigned& d) {
    days += 719468;
    const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    const unsigned doe = static_cast<unsigned>(days - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = static_cast<int64_t>(yoe) + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2) ++y;
}

void put_ts(Buf& b) {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    const int64_t secs = ts.tv_sec;
    int64_t y;
    unsigned m, d;
    civil(secs / 86400, y, m, d);
    const int64_t sod = secs % 86400;
    b.num(y, 4);
    b.put("-");
    b.num(m, 2);
    b.put("-");
    b.num(d, 2);
    b.put("T");
    b.num(sod / 3600, 2);
    b.put(":");
    b.num(sod / 60 % 60, 2);
    b.put(":");
    b.num(sod % 60, 2);
    b.put(".");
    b.num(ts.tv_nsec / 1000000, 3);
    b.put("Z");
}

void put_ids(Buf& b, const char* sep) {
    for (size_t i = 0; i < t_call.count; ++i) {
        if (i > 0) b.put(sep);
        b.num(t_call.ids[i]);
    }
}

void on_fatal(int sig, siginfo_t* info, void*) {
    const int saved = errno;
    if (g_writer.exchange(1) == 0) {
        const bool in_call = t_call.active;
        Buf line;
        line.put("ts=");
        put_ts(line);
        line.put(" level=error component=");
        line.put(g_component);
        line.put(in_call ? " msg=\"fatal signal in a plugin call; the process dies\""
                         : " msg=\"fatal signal; the process dies\"");
        line.put(" signal=");
        line.put(signal_name(sig));
        if (in_call) {
            line.put(" plugin=");
            line.value(t_call.plugin);
            if (t_call.count > 0) {
                line.put(" deliveries=");
                put_ids(line, ",");
                if (t_call.total > t_call.count) line.put(",...");
            }
        }
        line.put(" pid=");
        line.num(::getpid());
        line.put("\n");
        (void)!::write(STDERR_FILENO, line.data, line.n);

        if (g_record[0] != '\0') {
            Buf rec;
            rec.put("clayhook-crash 1\nsignal ");
            rec.put(signal_name(sig));
            rec.put("\nowner ");
            rec.put(g_owner);
            rec.put("\nplugin ");
            if (in_call) rec.put(t_call.plugin);
            rec.put("\ndeliveries");
            if (in_call && t_call.count > 0) {
                rec.put(" ");
                put_ids(rec, " ");
            }
            rec.put("\n");
            // Whole or not at all: written aside, then renamed into place.
            int fd = ::open(g_record_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            if (fd >= 0) {
                const bool whole = ::write(fd, rec.data, rec.n) == static_cast<ssize_t>(rec.n);
                ::fsync(fd);
                ::close(fd);
                if (whole) ::rename(g_record_tmp, g_record);
            }
        }
        g_written.store(true);
    } else {
        // Another thread is writing the last words: let it finish (up to a
        // second) before this one ends the process.
        for (int i = 0; i < 1000 && !g_written.load(); ++i) {
            timespec ms{0, 1'000'000};
            ::nanosleep(&ms, nullptr);
        }
    }
    // The previous disposition (a sanitizer's, or the default) takes over:
    // a fault re-executes and hits it; an abort, or a signal sent by kill()
    // (nothing to re-execute), is raised again.
    for (size_t i = 0; i < sizeof kSignals / sizeof kSignals[0]; ++i)
        if (kSignals[i] == sig) ::sigaction(sig, &g_previous[i], nullptr);
    errno = saved;
    if (sig == SIGABRT || info == nullptr || info->si_code <= 0) ::raise(sig);
}

void copy_to(char* dst, size_t cap, std::string_view s) {
    const size_t n = std::min(cap - 1, s.size());
    std::memcpy(dst, s.data(), n);
    dst[n] = '\0';
}

}  // namespace

void install(const std::string& record_path, const std::string& owner, std::string_view component) {
    copy_to(g_record, sizeof g_record, record_path);
    copy_to(g_record_tmp, sizeof g_record_tmp, record_path.empty() ? "" : record_path + ".tmp");
    copy_to(g_owner, sizeof g_owner, owner);
    copy_to(g_component, sizeof g_component, component);
    if (g_installed.exchange(true)) return;
    prepare_thread();
    struct sigaction sa {};
    sa.sa_sigaction = &on_fatal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof kSignals / sizeof kSignals[0]; ++i)
        ::sigaction(kSignals[i], &sa, &g_previous[i]);
}

void prepare_thread() {
    if (t_altstack.mem != nullptr) return;
    const size_t size = 64 * 1024;
    void* mem = std::malloc(size);
    if (mem == nullptr) return;
    stack_t st{};
    st.ss_sp = mem;
    st.ss_size = size;
    if (::sigaltstack(&st, nullptr) != 0) {
        std::free(mem);
        return;
    }
    t_altstack.mem = mem;
}

CallScope::CallScope(std::string_view plugin, std::span<const int64_t> deliveries) noexcept {
    copy_to(t_call.plugin, sizeof t_call.plugin, plugin);
    t_call.count = std::min(deliveries.size(), kMaxIds);
    for (size_t i = 0; i < t_call.count; ++i)
        t_call.ids[i] = deliveries[i];
    t_call.total = deliveries.size();
    std::atomic_signal_fence(std::memory_order_seq_cst);  // the slot is whole before it counts
    t_call.active = true;
}

CallScope::~CallScope() {
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t_call.active = false;
}

}  // namespace clayhook::fatal
