/* mproc/shm.h: named shared memory (Python's
 * multiprocessing.shared_memory.SharedMemory and ShareableList).
 * Included by mproc.h; do not include directly.
 *
 * A segment is a POSIX shared memory object (/dev/shm/<name>) that unrelated
 * processes open by name, Python programs included: a segment made here is a
 * SharedMemory to Python and the other way round, and a ShareableList has
 * CPython's binary layout, so a Python process attaches to a list made in C
 * and C to one made in Python.
 *
 * Names: as Python, a name is given with or without one leading '/', and
 * mp_shm_name reports it without. After that slash a name holds 1 to
 * MP_SHM_NAME_MAX bytes and no '/'. A NULL name makes a fresh one as Python
 * does ("psm_" and 8 random hex digits).
 *
 * Lifetime: a segment lives until someone unlinks it (mp_shm_unlink), like a
 * file; closing or freeing a handle only unmaps it. Beyond Python, whoever
 * creates a segment chooses (mp_shm_opts_t.unlink_on_exit) whether it is
 * unlinked when the creating process ends without having unlinked it,
 * however it ends (SIGKILL included). Only the creator's choice counts: a
 * process that merely attaches never removes a segment (Python's resource
 * tracker does, when the attaching Python process exits). A creator that
 * calls exec counts as ended: its tracked segments are unlinked then.
 *
 * Handles are process-local. A child started by fork inherits a working copy
 * of the mapping, but the portable way (every start method, and unrelated
 * programs) is to pass the name and attach. The functions of one handle must
 * not race with its own close/free; distinct handles are independent. The
 * contents are plain shared bytes: synchronize access with a Lock. */
#ifndef MPROC_SHM_H
#define MPROC_SHM_H

#include <stddef.h>
#include <stdint.h>

/* MP_SHM_NAME_MAX is the longest name, leading '/' excluded (glibc's
 * shm_open limit, so Python accepts exactly the same names). */
#define MP_SHM_NAME_MAX 253

/* mp_shm_t is a handle on one mapping of a named segment. */
typedef struct mp_shm mp_shm_t;

/* mp_shm_opts_t holds the creation options; zero means default. */
typedef struct {
    int unlink_on_exit; /* non-zero: unlink the segment when this process
                         * ends without having unlinked it (normal exit,
                         * crash or SIGKILL). Default: the segment stays, as
                         * in Python without its resource tracker. */
} mp_shm_opts_t;

/* mp_shm_new creates a new segment of size bytes (zero-filled, mode 0600)
 * named name (NULL: a fresh "psm_<hex>" name) and maps it read-write.
 * Nothing is left behind when the call fails. With unlink_on_exit the
 * segment appears under its name complete (sized) or not at all; without
 * it, as in Python, a process that attaches at the very instant of creation
 * may find it still empty (-EINVAL).
 * With opts->unlink_on_exit the first such segment of the process starts a
 * small watcher process (see the design notes); it ends when the process
 * has unlinked all of them.
 * Returns: 0 and *out; -EEXIST (Python: FileExistsError) if name exists;
 *   -EINVAL (NULL out, size 0, an empty name or one with a '/' after the
 *   leading one); -ENAMETOOLONG (over MP_SHM_NAME_MAX); -ENOMEM; -ENOSPC,
 *   -EMFILE, -EAGAIN or another -errno of the failing system call.
 * Safe: any thread. Python: SharedMemory(name, create=True, size=size). */
MP_API int mp_shm_new(mp_shm_t **out, const char *name, size_t size,
                      const mp_shm_opts_t *opts);

/* mp_shm_attach maps the existing segment name read-write; its size is the
 * segment's size.
 * Returns: 0 and *out; -ENOENT (Python: FileNotFoundError) if there is no
 *   such segment; -EINVAL (NULL out, bad name, a segment of size 0: Python's
 *   "cannot mmap an empty file"); -ENAMETOOLONG; -EACCES; -ENOMEM; -errno.
 * Safe: any thread, any process. Python: SharedMemory(name). */
MP_API int mp_shm_attach(mp_shm_t **out, const char *name);

/* mp_shm_name returns s's name without a leading '/' (NULL for NULL); it
 * lives as long as s. Python: SharedMemory.name. */
MP_API const char *mp_shm_name(const mp_shm_t *s);

/* mp_shm_size returns the mapped size in bytes (0 for NULL).
 * Python: SharedMemory.size. */
MP_API size_t mp_shm_size(const mp_shm_t *s);

/* mp_shm_buf returns the start of the mapping, or NULL once s is closed.
 * Python: SharedMemory.buf. */
MP_API void *mp_shm_buf(const mp_shm_t *s);

/* mp_shm_close unmaps s; the segment itself stays (other handles and
 * processes keep their mappings; mp_shm_unlink still works). Closing twice
 * is not an error. Returns: 0; -EINVAL for NULL.
 * Python: SharedMemory.close(). */
MP_API int mp_shm_close(mp_shm_t *s);

/* mp_shm_unlink removes s's name, so nobody can attach any more; the memory
 * is released once every mapping is gone. Call it once across all handles
 * of all processes. If this process created the segment with
 * unlink_on_exit, the exit-time unlink is cancelled.
 * Returns: 0; -ENOENT (Python: FileNotFoundError) if the name is already
 *   gone (unlinked twice); -EINVAL for NULL; -errno.
 * Safe: any thread, open or closed s. Python: SharedMemory.unlink(). */
MP_API int mp_shm_unlink(mp_shm_t *s);

/* mp_shm_free closes s (when still open) and releases the handle; it never
 * unlinks. Accepts NULL. */
MP_API void mp_shm_free(mp_shm_t *s);

/* ---- ShareableList ---------------------------------------------------------
 * A fixed-length list of items that are each nil, a bool, an int (int64), a
 * float (double), a string (UTF-8) or bytes, stored in a named segment with
 * CPython's layout: the item count, the offsets of each item's storage, the
 * packed items, one 8-byte struct format per item and one back-transform
 * code per item. Each item owns the storage it was created with: 8 bytes for
 * nil, bool, int and float; for a string or bytes of n bytes, the multiple of
 * 8 above n (8 * (n / 8 + 1)). An item may later take a value of any other
 * type in place, as long as a string or bytes value fits that storage.
 * As in Python, trailing NUL bytes of strings and bytes are not kept.
 *
 * Indexes: as Python, i >= 0 counts from the start and i < 0 from the end
 * (-1 is the last item); anything else is -ERANGE (IndexError).
 * Values go in and out as mp_val_t (mproc/value.h): MP_VAL_NIL, BOOL, INT,
 * FLOAT, STR and BYTES (MP_VAL_UINT too when it fits an int64).
 * Items are read and written without a lock, as in Python. */

/* mp_shareable_list_t is a handle on one mapping of a list. */
typedef struct mp_shareable_list mp_shareable_list_t;

/* MP_SHAREABLE_LIST_ITEM_MAX is the largest storage of one item (its struct
 * format must fit 8 characters, "9999999s"). */
#define MP_SHAREABLE_LIST_ITEM_MAX 9999999u

/* mp_shareable_list_new creates a list holding copies of items[0..n) in a
 * new segment named name (NULL: a fresh name); opts as for mp_shm_new.
 * items may be NULL when n is 0.
 * Returns: 0 and *out; -EINVAL (NULL out, an item of another type, a
 *   string or bytes with a NULL pointer and non-zero length, a bad name);
 *   -EILSEQ (a string that is not valid UTF-8); -EOVERFLOW (MP_VAL_UINT
 *   above INT64_MAX: Python's struct.error); -EMSGSIZE (an item over
 *   MP_SHAREABLE_LIST_ITEM_MAX); every code of mp_shm_new.
 * Python: ShareableList(sequence, name=name). */
MP_API int mp_shareable_list_new(mp_shareable_list_t **out,
                                 const mp_val_t *items, size_t n,
                                 const char *name, const mp_shm_opts_t *opts);

/* mp_shareable_list_attach maps the existing list name.
 * Returns: 0 and *out; -EBADMSG if the segment does not hold a well-formed
 *   list; every code of mp_shm_attach. Python: ShareableList(name=name). */
MP_API int mp_shareable_list_attach(mp_shareable_list_t **out,
                                    const char *name);

/* mp_shareable_list_shm returns the list's segment (for its name, and to
 * unlink it: mp_shm_unlink(mp_shareable_list_shm(l))); it belongs to l.
 * Python: ShareableList.shm. */
MP_API mp_shm_t *mp_shareable_list_shm(const mp_shareable_list_t *l);

/* mp_shareable_list_len returns the number of items (0 for NULL).
 * Python: len(l). */
MP_API size_t mp_shareable_list_len(const mp_shareable_list_t *l);

/* mp_shareable_list_get copies item i into a new value (*out, one
 * allocation; release with mp_val_free). A string or bytes value carries a
 * terminating NUL after its len bytes.
 * Returns: 0; -ERANGE (IndexError); -EBADMSG (the item's format or code is
 *   not one ShareableList writes); -ENOMEM; -EINVAL. Python: l[i]. */
MP_API int mp_shareable_list_get(const mp_shareable_list_t *l, long i,
                                 mp_val_t **out);

/* mp_shareable_list_set stores v as item i, changing its type if needed.
 * Returns: 0; -ERANGE (IndexError); -EMSGSIZE if a string or bytes value is
 *   longer than the item's storage (Python: ValueError "bytes/str item
 *   exceeds available storage"; nothing is changed); -EILSEQ; -EOVERFLOW;
 *   -EINVAL (unsupported type, NULL). Python: l[i] = v. */
MP_API int mp_shareable_list_set(mp_shareable_list_t *l, long i,
                                 const mp_val_t *v);

/* mp_shareable_list_type returns item i's type (MP_VAL_NIL ... MP_VAL_BYTES,
 * >= 0), or -ERANGE, -EBADMSG, -EINVAL. Python: type(l[i]). */
MP_API int mp_shareable_list_type(const mp_shareable_list_t *l, long i);

/* mp_shareable_list_capacity returns how many bytes item i may hold as a
 * string or bytes (its storage), or -ERANGE, -EINVAL. */
MP_API long mp_shareable_list_capacity(const mp_shareable_list_t *l, long i);

/* mp_shareable_list_format writes the struct format of all items, joined
 * (as "q" "d" "xxxxxxx?" "16s" ...), NUL-terminated, into buf (truncated to
 * cap bytes) and returns its full length, or -EBADMSG, -EINVAL.
 * Python: ShareableList.format. */
MP_API long mp_shareable_list_format(const mp_shareable_list_t *l, char *buf,
                                     size_t cap);

/* mp_shareable_list_count returns how many items equal v (>= 0), or
 * -EBADMSG, -EINVAL. Equality is Python's: numbers compare by value across
 * bool, int and float (1 == 1.0 == true), nil equals nil, strings equal
 * strings and bytes equal bytes with the same contents.
 * Python: ShareableList.count(v). */
MP_API long mp_shareable_list_count(const mp_shareable_list_t *l,
                                    const mp_val_t *v);

/* mp_shareable_list_index returns the position of the first item equal to
 * v (equality as for count), or -ENOENT (Python: ValueError "not in this
 * container"), -EBADMSG, -EINVAL. Python: ShareableList.index(v). */
MP_API long mp_shareable_list_index(const mp_shareable_list_t *l,
                                    const mp_val_t *v);

/* mp_shareable_list_free unmaps the list and releases the handle; it never
 * unlinks (use mp_shm_unlink on mp_shareable_list_shm first). Accepts NULL.
 * Python: l.shm.close(). */
MP_API void mp_shareable_list_free(mp_shareable_list_t *l);

#endif
