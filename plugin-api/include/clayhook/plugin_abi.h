/*
 * clayhook plugin ABI, version 1.1 -- the only thing that crosses the boundary
 * between the host and a plugin shared library.
 *
 * Pure C. Plugin authors normally never include this directly: the C++ SDK in
 * <clayhook/plugin.hpp> generates everything below from an ordinary class.
 *
 * VERSIONING
 *   CLAYHOOK_ABI_MAJOR changes when anything here changes incompatibly; the
 *   minor grows when something is added at the end of a struct. The host loads
 *   a plugin when the majors are equal and the plugin's minor is not above the
 *   host's (the host may be newer, never older). The first three fields of
 *   clayhook_plugin_descriptor (abi_major, abi_minor, struct_size) keep their
 *   place in every major, so any host can read them and refuse cleanly.
 *   tests/plugin-api/abi_hash_test checks a hash of this file: editing it fails
 *   that test until the version (and the recorded hash) is bumped.
 *
 * THE ENTRY POINT
 *   A plugin exports exactly one symbol, CLAYHOOK_PLUGIN_ENTRY_SYMBOL, a
 *   function returning a pointer to a static descriptor. It is called once per
 *   load, must not fail, and the descriptor must stay valid until the library
 *   is unloaded.
 *
 * OWNERSHIP AND LIFETIME
 *   - Everything the host passes in (events, strings, the config text, the
 *     host API table) is owned by the host. Event and string views are valid
 *     only for the duration of the call they are passed to: copy what you
 *     keep. The host API table and its host_ctx stay valid from create() until
 *     destroy() returns.
 *   - Strings are (pointer, length) views, not NUL-terminated, unless a field
 *     says otherwise. Descriptor strings (name, version, patterns) are
 *     NUL-terminated and static.
 *   - Results and error messages are written by the plugin into buffers the
 *     host owns and sized (clayhook_result.reason, create()'s err buffer),
 *     truncated to fit and always NUL-terminated. Nothing allocated on one
 *     side is ever freed on the other.
 *   - The instance pointer returned by create() belongs to the plugin; the
 *     host hands it back to handle()/handle_batch() and to destroy() exactly
 *     once, and never calls anything after destroy().
 *   - No C++ exception may leave any function here (the SDK catches them all).
 *
 * THREADING
 *   handle() and handle_batch() may be called on several host threads at once
 *   for the same instance, at most max_concurrency calls at a time (0 lets the
 *   host choose; 1 serialises). create() and destroy() never overlap any other
 *   call on that instance. Host API functions are thread-safe.
 */
#ifndef CLAYHOOK_PLUGIN_ABI_H
#define CLAYHOOK_PLUGIN_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CLAYHOOK_ABI_MAJOR 1
#define CLAYHOOK_ABI_MINOR 1

/* The one symbol a plugin exports. */
#define CLAYHOOK_PLUGIN_ENTRY_SYMBOL "clayhook_plugin_entry"

/* Size of the host-owned buffers plugins write reasons and errors into. */
#define CLAYHOOK_REASON_MAX 1024

/* A read-only view of bytes; data may be NULL when len is 0. */
typedef struct clayhook_str {
    const char* data;
    size_t len;
} clayhook_str;

/* One delivery of one stored event to one plugin. */
typedef struct clayhook_event {
    clayhook_str id;              /* the host's event id, unique and stable */
    clayhook_str source;          /* the configured source it arrived on */
    clayhook_str type;            /* event type, e.g. "enrichment.completed" */
    clayhook_str idempotency_key; /* the key the host deduplicated on */
    clayhook_str body;            /* the raw body bytes as received (JSON) */
    int64_t received_at_ms;       /* unix time in ms at which it was acknowledged */
    uint32_t attempt;             /* 1 for the first try of this delivery */
    uint32_t reserved;
} clayhook_event;

typedef enum clayhook_status {
    CLAYHOOK_DONE = 0,  /* handled; never handed over again */
    CLAYHOOK_RETRY = 1, /* try again later (after retry_after_ms when > 0) */
    CLAYHOOK_FAIL = 2   /* will never succeed; goes to the dead letters */
} clayhook_status;

/* Filled in by the plugin. The host zeroes it (status DONE, empty reason)
 * before every call. */
typedef struct clayhook_result {
    int32_t status;          /* a clayhook_status */
    uint32_t retry_after_ms; /* with CLAYHOOK_RETRY: the wait the plugin asks for, 0 = policy */
    char reason[CLAYHOOK_REASON_MAX]; /* NUL-terminated; why it retried or failed */
} clayhook_result;

typedef enum clayhook_log_level {
    CLAYHOOK_LOG_DEBUG = 0,
    CLAYHOOK_LOG_INFO = 1,
    CLAYHOOK_LOG_WARN = 2,
    CLAYHOOK_LOG_ERROR = 3
} clayhook_log_level;

/* Return codes of host services. */
#define CLAYHOOK_OK 0
#define CLAYHOOK_NOT_FOUND 1
#define CLAYHOOK_ERR_UNSUPPORTED (-1) /* this host does not provide the service (yet) */
#define CLAYHOOK_ERR_INVALID (-2)     /* bad arguments */
#define CLAYHOOK_ERR_STORE (-3)       /* the store could not do it now; try again */

/* Receives a value from the host; called at most once, during the host call. */
typedef void (*clayhook_value_sink)(void* user, const char* data, size_t len);

/* Services the host offers a plugin instance. Every function takes the
 * table's host_ctx as its first argument. */
typedef struct clayhook_host_api {
    uint32_t struct_size; /* sizeof(clayhook_host_api) as the host knows it */
    void* host_ctx;

    /* Logging: one line, attributed to the plugin by the host. */
    void (*log)(void* host_ctx, int32_t level, clayhook_str message);

    /* Metrics, exported by the host as clayhook_plugin_<name>{plugin="…",<labels>}.
     * labels is "k=v,k2=v2" (may be empty). Names: [a-z_][a-z0-9_]*. */
    int32_t (*counter_add)(void* host_ctx, clayhook_str name, clayhook_str labels, double delta);
    int32_t (*gauge_set)(void* host_ctx, clayhook_str name, clayhook_str labels, double value);

    /* Durable per-plugin key-value store (keys and values are bytes).
     * kv_get calls sink with the value and returns CLAYHOOK_OK, or returns
     * CLAYHOOK_NOT_FOUND. Reserved in 1.0: hosts without a store answer
     * CLAYHOOK_ERR_UNSUPPORTED. */
    int32_t (*kv_get)(void* host_ctx, clayhook_str key, clayhook_value_sink sink, void* user);
    int32_t (*kv_put)(void* host_ctx, clayhook_str key, clayhook_str value);
    int32_t (*kv_delete)(void* host_ctx, clayhook_str key);

    /* Deliver event `event_id` to this plugin again at unix time at_ms, as a
     * new attempt, whatever the current call answers. Reserved in 1.0 like
     * the key-value store. */
    int32_t (*deliver_again_at)(void* host_ctx, clayhook_str event_id, int64_t at_ms);
} clayhook_host_api;

/* What status the host puts in each result before handle_batch: a slot still
 * holding it afterwards was not filled in. */
#define CLAYHOOK_RESULT_UNSET (-1)

/* The type of a declared config key, as written in the YAML. A key's name
 * never changes how its value is read: only its type does. The host refuses
 * (at load, with the reason) a declaration with a type it does not know. */
typedef enum clayhook_config_type {
    CLAYHOOK_CONFIG_STRING = 0,   /* text */
    CLAYHOOK_CONFIG_INTEGER = 1,  /* a whole number */
    CLAYHOOK_CONFIG_BOOLEAN = 2,  /* true or false */
    CLAYHOOK_CONFIG_DURATION = 3, /* 250ms, 30s, 5m, 1h, 1d; a bare number (30, "30", a
                                     default "30") is seconds: handed over as integer ms */
    CLAYHOOK_CONFIG_SIZE = 4,     /* 64KiB, 1MiB, 1GiB (or integer bytes): handed over as bytes */
    CLAYHOOK_CONFIG_STRING_LIST = 5, /* a list of text */
    CLAYHOOK_CONFIG_OBJECT = 6,      /* a mapping, or anything: handed over as it is */
    CLAYHOOK_CONFIG_DURATION_MS = 7  /* as DURATION (250ms, 30s, 5m, ...), but a bare
                                        number is milliseconds: handed over as integer ms */
} clayhook_config_type;

#define CLAYHOOK_CONFIG_REQUIRED 1u /* the key must be given (no default) */
#define CLAYHOOK_CONFIG_SECRET 2u   /* a reference only; its value never shown */

typedef struct clayhook_config_key {
    const char* name;          /* the key under config:, NUL-terminated */
    int32_t type;              /* a clayhook_config_type */
    uint32_t flags;            /* CLAYHOOK_CONFIG_REQUIRED | CLAYHOOK_CONFIG_SECRET */
    const char* default_value; /* as the YAML would write it ("10", "30s", "true"); NULL: none */
    const char* help;          /* one line for `clayhook check` and the docs */
} clayhook_config_key;

/* What a plugin exports. Fields up to struct_size are the stable prefix. */
typedef struct clayhook_plugin_descriptor {
    uint32_t abi_major;   /* CLAYHOOK_ABI_MAJOR the plugin was built with */
    uint32_t abi_minor;   /* CLAYHOOK_ABI_MINOR the plugin was built with */
    uint32_t struct_size; /* sizeof(clayhook_plugin_descriptor) as built */
    uint32_t reserved;

    const char* name;        /* [a-z0-9][a-z0-9_.-]*, NUL-terminated */
    const char* version;     /* the plugin's own version, e.g. "1.2.0" */
    const char* description; /* one line, may be NULL */

    /* Event-type patterns handled by default: "enrichment.completed",
     * "enrichment.*" (a prefix up to a dot), or "*". */
    const char* const* event_patterns;
    size_t event_pattern_count;

    uint32_t max_batch_size;  /* > 0: handle_batch is provided and takes up to this many */
    uint32_t max_concurrency; /* 0: host default; else the most calls at once */

    /* Creates an instance from its config subtree (JSON text, an object).
     * On failure returns NULL and writes why into err (err_cap bytes). */
    void* (*create)(const clayhook_host_api* host, clayhook_str config_json, char* err,
                    size_t err_cap);
    void (*destroy)(void* instance);

    /* Handles one event; writes the outcome into *out. Since 1.1 it may be
     * NULL when handle_batch is given: the host then calls handle_batch with
     * one event. */
    void (*handle)(void* instance, const clayhook_event* event, clayhook_result* out);

    /* Optional (NULL unless max_batch_size > 0): handles count events at
     * once and writes one result per event, in the same order. A result
     * left as the host passed it (status CLAYHOOK_RESULT_UNSET) is a retry
     * with the reason that the plugin gave none, never a silent done. */
    void (*handle_batch)(void* instance, const clayhook_event* events, size_t count,
                         clayhook_result* outs);

    /* ---- 1.1: read by the host only when struct_size covers them ---- */

    /* The keys the plugin's config takes (NULL/0: not declared, and the
     * host hands the config over unchecked, as in 1.0). When declared, the
     * host refuses an unknown key (with the nearest declared one suggested),
     * a missing required key and a value of the wrong type, each at its line
     * in the config file; fills in defaults; turns durations into integer
     * milliseconds and sizes into integer bytes; and requires secret keys to
     * be references (${VAR}, file:PATH, credential:NAME), resolved before
     * create() and kept out of logs and reports. */
    const clayhook_config_key* config_keys;
    size_t config_key_count;
} clayhook_plugin_descriptor;

typedef const clayhook_plugin_descriptor* (*clayhook_plugin_entry_fn)(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CLAYHOOK_PLUGIN_ABI_H */
