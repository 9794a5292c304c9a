/* test_errors.c: mp_strerror names every code: the library codes, negative
 * errno values and 0, and never returns NULL (unknown codes included). */
#include "mp_test.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static const struct {
    int code;
    const char *name;
} lib_codes[] = {
    {MP_EEMPTY, "MP_EEMPTY"},         {MP_EFULL, "MP_EFULL"},
    {MP_EEOF, "MP_EEOF"},             {MP_ECLOSED, "MP_ECLOSED"},
    {MP_EBROKEN, "MP_EBROKEN"},       {MP_EAUTH, "MP_EAUTH"},
    {MP_ETOOSHORT, "MP_ETOOSHORT"},   {MP_EWORKERDIED, "MP_EWORKERDIED"},
    {MP_ESTARTED, "MP_ESTARTED"},     {MP_ENOTSTARTED, "MP_ENOTSTARTED"},
    {MP_ERUNNING, "MP_ERUNNING"},     {MP_EDAEMON, "MP_EDAEMON"},
    {MP_ESPAWN, "MP_ESPAWN"},         {MP_ETERMINATED, "MP_ETERMINATED"},
};
#define NLIB (sizeof lib_codes / sizeof lib_codes[0])

static int named(const char *s)
{
    return s && *s && strcmp(s, "unknown error") != 0;
}

/* Every library code has its own non-empty name, in the reserved range. */
static void strerror_library_codes(void **state)
{
    for (size_t i = 0; i < NLIB; i++) {
        const char *s = mp_strerror(lib_codes[i].code);
        if (!named(s))
            mp_test_fail("mp_strerror(%s = %d) is \"%s\"\n", lib_codes[i].name,
                         lib_codes[i].code, s ? s : "(null)");
        assert_true(lib_codes[i].code <= -3000 && lib_codes[i].code >= -3999);
        for (size_t j = 0; j < i; j++) {
            if (lib_codes[i].code == lib_codes[j].code)
                mp_test_fail("%s and %s have the same value %d\n",
                             lib_codes[i].name, lib_codes[j].name,
                             lib_codes[i].code);
            if (!strcmp(s, mp_strerror(lib_codes[j].code)))
                mp_test_fail("%s and %s have the same name \"%s\"\n",
                             lib_codes[i].name, lib_codes[j].name, s);
        }
    }
}

/* 0 has a name (success) distinct from every error. */
static void strerror_zero(void **state)
{
    const char *s = mp_strerror(0);
    assert_non_null(s);
    assert_true(*s != 0);
    assert_true(strcmp(s, "unknown error") != 0);
    for (size_t i = 0; i < NLIB; i++)
        assert_true(strcmp(s, mp_strerror(lib_codes[i].code)) != 0);
    assert_true(strcmp(s, mp_strerror(-EINVAL)) != 0);
}

/* Negative errno values are named, and differently from each other. */
static void strerror_errno(void **state)
{
    const char *inval = mp_strerror(-EINVAL);
    if (!named(inval))
        mp_test_fail("mp_strerror(-EINVAL) is \"%s\"\n", inval ? inval : "(null)");
    const int common[] = {EINVAL, ENOMEM, ETIMEDOUT, EAGAIN, EOWNERDEAD,
                          EMSGSIZE, EINTR, EPIPE, ECONNREFUSED, ENOENT, EBADF,
                          EMFILE, ENOSPC, ESRCH, EUCLEAN, ECHILD};
    const size_t nc = sizeof common / sizeof common[0];
    for (size_t i = 0; i < nc; i++) {
        const char *s = mp_strerror(-common[i]);
        if (!named(s))
            mp_test_fail("mp_strerror(-%d) is \"%s\"\n", common[i],
                         s ? s : "(null)");
        for (size_t j = 0; j < i; j++)
            if (!strcmp(s, mp_strerror(-common[j])))
                mp_test_fail("-%d and -%d share the name \"%s\"\n", common[i],
                             common[j], s);
        for (size_t j = 0; j < NLIB; j++)
            if (!strcmp(s, mp_strerror(lib_codes[j].code)))
                mp_test_fail("-%d and %s share the name \"%s\"\n", common[i],
                             lib_codes[j].name, s);
    }
    /* Every errno the C library knows is named (not "unknown error"). */
    for (int e = 1; e < 134; e++) {
        const char *libc = strerror(e);
        if (!libc || !strncmp(libc, "Unknown error", 13))
            continue;
        const char *s = mp_strerror(-e);
        if (!named(s))
            mp_test_fail("mp_strerror(-%d) is \"%s\" (libc: %s)\n", e,
                         s ? s : "(null)", libc);
    }
}

/* Unknown codes give "unknown error", never NULL, and never overflow. */
static void strerror_unknown(void **state)
{
    const int unknown[] = {-3000, -3015, -3500, -3999, 1, 42, INT_MAX,
                           INT_MIN, INT_MIN + 1};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *s = mp_strerror(unknown[i]);
        assert_non_null(s);
        if (strcmp(s, "unknown error") != 0)
            mp_test_fail("mp_strerror(%d) is \"%s\", expected \"unknown error\"\n",
                         unknown[i], s);
    }
    /* Beyond the errno range but not a library code: a string, not NULL. */
    const int odd[] = {-4000, -4095, -4096, -100000, -2999};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        const char *s = mp_strerror(odd[i]);
        assert_non_null(s);
        assert_true(*s != 0);
    }
}

static void *strerror_thread(void *arg)
{
    for (int r = 0; r < 20000; r++) {
        const char *s = mp_strerror(lib_codes[r % NLIB].code);
        if (!s || strcmp(s, ((const char *const *)arg)[r % NLIB]) != 0)
            return (void *)1;
        if (!mp_strerror(-(r % 140)))
            return (void *)1;
    }
    return NULL;
}

static volatile sig_atomic_t sig_ok;
static void on_usr1(int sig)
{
    /* mp_strerror is documented async-signal-safe: call it from a handler. */
    const char *s = mp_strerror(MP_ECLOSED);
    sig_ok = (s != NULL && *s != 0) ? 1 : 2;
}

/* The result is stable, from many threads at once and from a handler. */
static void strerror_threads_and_signal(void **state)
{
    const char *before[NLIB];
    for (size_t i = 0; i < NLIB; i++)
        before[i] = mp_strerror(lib_codes[i].code);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, strerror_thread, (void *)before), 0);
    for (int i = 0; i < 4; i++) {
        void *ret = (void *)1;
        pthread_join(t[i], &ret);
        assert_null(ret);
    }
    for (size_t i = 0; i < NLIB; i++)
        mp_assert_str(mp_strerror(lib_codes[i].code), before[i]);
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, &old);
    raise(SIGUSR1);
    sigaction(SIGUSR1, &old, NULL);
    mp_assert_int(sig_ok, 1);
}

int main(int argc, char **argv)
{
    static const mp_test_case_t cases[] = {
        MP_TEST(strerror_library_codes),
        MP_TEST(strerror_zero),
        MP_TEST(strerror_errno),
        MP_TEST(strerror_unknown),
        MP_TEST(strerror_threads_and_signal),
    };
    static const mp_test_config_t cfg = {0};
    return mp_test_main(argc, argv, cases, sizeof cases / sizeof cases[0], &cfg);
}
