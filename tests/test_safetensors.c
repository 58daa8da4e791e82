/* safetensors: round trips, byte-exact agreement with the reference writer
 * (headers below were produced by Python's json.dumps as st_save calls it),
 * dtype conversions, and one test per hostile file: each must fail with the
 * right status and a message naming the file and the problem. */
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "testutil.h"

static void setup(void) { tu_scratch_make("tg_st"); }
static void teardown(void) { tu_scratch_remove(); }

/* 8-byte little-endian `hlen`, then `hdr` (strlen bytes), then `data`. */
static const char *craft_len(const char *name, uint64_t hlen, const char *hdr, const void *data,
                             size_t dn)
{
    size_t hn = strlen(hdr);
    unsigned char *b = malloc(8 + hn + dn + 1);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(b + 8, hdr, hn);
    if (dn)
        memcpy(b + 8 + hn, data, dn);
    const char *p = tu_path(name);
    tu_write_file(p, b, 8 + hn + dn);
    free(b);
    return p;
}
static const char *craft(const char *name, const char *hdr, const void *data, size_t dn)
{
    return craft_len(name, strlen(hdr), hdr, data, dn);
}

/* The read must fail with `st`, a message naming the file and containing
 * `what`, and leave *out zeroed. */
static void expect_fail(const char *path, tg_status st, const char *what)
{
    tg_st_file f;
    memset(&f, 0x5a, sizeof f);
    tg_status s = tg_st_read(path, &f);
    const char *msg = tg_last_error();
    ck_assert_msg(s == st, "%s: status %d, want %d (%s)", path, (int)s, (int)st, msg);
    ck_assert_msg(strstr(msg, path), "message lacks the file name: %s", msg);
    ck_assert_msg(strstr(msg, what), "message lacks '%s': %s", what, msg);
    ck_assert_ptr_null(f.tensors);
    ck_assert_ptr_null(f.buf);
    ck_assert_ptr_null(f.meta_keys);
    ck_assert_uint_eq(f.ntensors, 0);
    ck_assert_uint_eq(f.nmeta, 0);
}
#define HOSTILE(hdr, data, dn, st, what) expect_fail(craft("x.safetensors", hdr, data, dn), st, what)

static const float zeros[64];

/* ---------------------------------------------------------------- round trip */
START_TEST(round_trip)
{
    float a[4] = {1.0f, -0.0f, INFINITY, NAN}, bw[3] = {FLT_MIN / 8, FLT_MAX, -3.25f}, sc = 7.5f;
    tg_st_entry e[4] = {
        {.name = "b.w", .ndim = 2, .shape = {1, 3}, .data = bw},
        {.name = "a", .ndim = 2, .shape = {2, 2}, .data = a},
        {.name = "scalar", .ndim = 0, .data = &sc},
        {.name = "empty", .ndim = 2, .shape = {0, 5}, .data = NULL},
    };
    const char *mk[] = {"format", "descriptor"}, *mv[] = {"transgan-checkpoint", "{\"x\": [1, 2]}\n"};
    const char *p = tu_path("rt.safetensors");
    OK(tg_st_write(p, e, 4, mk, mv, 2));
    tg_st_file f;
    OK(tg_st_read(p, &f));
    ck_assert_uint_eq(f.ntensors, 4);
    ck_assert_uint_eq(f.nmeta, 2);
    for (int i = 0; i < 4; i++) {
        const tg_st_tensor *t = tg_st_find(&f, e[i].name);
        ck_assert_ptr_nonnull(t);
        ck_assert_str_eq(t->name, e[i].name);
        ck_assert_int_eq(t->dtype, TG_ST_F32);
        ck_assert_int_eq(t->ndim, e[i].ndim);
        size_t ne = 1;
        for (int d = 0; d < t->ndim; d++) {
            ck_assert_int_eq(t->shape[d], e[i].shape[d]);
            ne *= (size_t)e[i].shape[d];
        }
        ck_assert_uint_eq(t->nelem, ne);
        float got[8];
        tg_st_to_f32(t, got);
        if (ne) /* bit-exact, NaN and -0 included */
            ck_assert_int_eq(memcmp(got, e[i].data, ne * 4), 0);
    }
    ck_assert_ptr_null(tg_st_find(&f, "missing"));
    ck_assert_str_eq(tg_st_meta(&f, "format"), "transgan-checkpoint");
    ck_assert_str_eq(tg_st_meta(&f, "descriptor"), mv[1]);
    ck_assert_ptr_null(tg_st_meta(&f, "g_steps"));
    tg_st_free(&f);
    ck_assert_ptr_null(f.buf);
    tg_st_free(&f); /* idempotent */
}
END_TEST

START_TEST(round_trip_empty)
{
    const char *p = tu_path("empty.safetensors");
    OK(tg_st_write(p, NULL, 0, NULL, NULL, 0));
    size_t n;
    unsigned char *b = tu_read_file(p, &n);
    /* st_save({}) writes "{}" padded to 8 bytes, and no __metadata__ */
    ck_assert_uint_eq(n, 16);
    ck_assert_int_eq(memcmp(b, "\x08\0\0\0\0\0\0\0{}      ", 16), 0);
    free(b);
    tg_st_file f;
    OK(tg_st_read(p, &f));
    ck_assert_uint_eq(f.ntensors, 0);
    ck_assert_uint_eq(f.nmeta, 0);
    tg_st_free(&f);
}
END_TEST

/* The writer's header must be byte-identical to st_save's: sorted names,
 * ensure_ascii escapes (lowercase \u, surrogate pairs, \u007f), metadata
 * in the caller's order, space padding. */
static const char py_header[] =
    "{\"b.w\":{\"dtype\":\"F32\",\"shape\":[1,3],\"data_offsets\":[0,12]},"
    "\"caf\\u00e9\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[12,16]},"
    "\"e\\ud83d\\ude00\":{\"dtype\":\"F32\",\"shape\":[0,2],\"data_offsets\":[16,16]},"
    "\"z\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]},"
    "\"__metadata__\":{\"k\\\"ey\":\"line1\\nline2\\t\\\"q\\\" \\\\ \\u0001 \\u007f caf\\u00e9 "
    "\\ud83d\\ude00\",\"format\":\"transgan-checkpoint\"}}     ";

START_TEST(writer_matches_reference_bytes)
{
    float z[2] = {0.5f, -1.0f}, bw[3] = {1, 2, 3}, c = 4;
    tg_st_entry e[4] = {
        {.name = "z", .ndim = 1, .shape = {2}, .data = z},
        {.name = "e\xF0\x9F\x98\x80", .ndim = 2, .shape = {0, 2}},
        {.name = "caf\xC3\xA9", .ndim = 0, .data = &c},
        {.name = "b.w", .ndim = 2, .shape = {1, 3}, .data = bw},
    };
    const char *mk[] = {"k\"ey", "format"};
    const char *mv[] = {"line1\nline2\t\"q\" \\ \x01 \x7f caf\xC3\xA9 \xF0\x9F\x98\x80",
                        "transgan-checkpoint"};
    const char *p = tu_path("py.safetensors");
    OK(tg_st_write(p, e, 4, mk, mv, 2));
    size_t n, hn = sizeof py_header - 1;
    ck_assert_uint_eq(hn, 368);
    unsigned char *b = tu_read_file(p, &n);
    ck_assert_uint_eq(n, 8 + hn + 24);
    ck_assert_int_eq(b[0], hn & 0xff);
    ck_assert_int_eq(b[1], hn >> 8);
    for (int i = 2; i < 8; i++)
        ck_assert_int_eq(b[i], 0);
    ck_assert_msg(memcmp(b + 8, py_header, hn) == 0, "header differs:\n%.*s", (int)hn,
                  (const char *)b + 8);
    /* data: b.w, café, z in sorted order, little-endian */
    const unsigned char want[24] = {0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40,
                                    0, 0, 0x80, 0x40, 0, 0, 0, 0x3f, 0, 0, 0x80, 0xbf};
    ck_assert_int_eq(memcmp(b + 8 + hn, want, 24), 0);
    free(b);
    /* and it reads back, escapes decoded */
    tg_st_file f;
    OK(tg_st_read(p, &f));
    ck_assert_ptr_nonnull(tg_st_find(&f, "caf\xC3\xA9"));
    ck_assert_ptr_nonnull(tg_st_find(&f, "e\xF0\x9F\x98\x80"));
    ck_assert_str_eq(tg_st_meta(&f, "k\"ey"), mv[0]);
    tg_st_free(&f);
}
END_TEST

/* What st_save writes for {"b.weight": float32 2x2, "a.half": float16 [3]}
 * with the checkpoint's metadata (bytes from the reference's json.dumps). */
START_TEST(reads_reference_file)
{
    const char *hdr =
        "{\"a.half\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]},"
        "\"b.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[6,22]},"
        "\"__metadata__\":{\"format\":\"transgan-checkpoint\",\"descriptor\":"
        "\"{\\\"a\\\": 1, \\\"b\\\": \\\"x\\\"}\",\"d_steps\":\"3\"}}";
    ck_assert_uint_eq(strlen(hdr), 224);
    const unsigned char data[22] = {0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38, /* 1, -2, 0.5 */
                                    0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40,
                                    0, 0, 0x80, 0x40};
    const char *p = craft("ref.safetensors", hdr, data, sizeof data);
    tg_st_file f;
    OK(tg_st_read(p, &f));
    ck_assert_uint_eq(f.ntensors, 2);
    const tg_st_tensor *h = tg_st_find(&f, "a.half"), *w = tg_st_find(&f, "b.weight");
    ck_assert_ptr_nonnull(h);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(h->dtype, TG_ST_F16);
    ck_assert_int_eq(h->ndim, 1);
    ck_assert_int_eq(h->shape[0], 3);
    ck_assert_int_eq(w->ndim, 2);
    ck_assert_int_eq(w->shape[0], 2);
    ck_assert_int_eq(w->shape[1], 2);
    float x[4];
    tg_st_to_f32(h, x);
    ck_assert(x[0] == 1.0f && x[1] == -2.0f && x[2] == 0.5f);
    tg_st_to_f32(w, x); /* data at offset 6: unaligned */
    ck_assert(x[0] == 1.0f && x[1] == 2.0f && x[2] == 3.0f && x[3] == 4.0f);
    ck_assert_str_eq(tg_st_meta(&f, "descriptor"), "{\"a\": 1, \"b\": \"x\"}");
    ck_assert_str_eq(tg_st_meta(&f, "d_steps"), "3");
    tg_st_free(&f);
}
END_TEST

START_TEST(null_metadata_and_whitespace)
{
    /* the reference reads "__metadata__": null as no metadata; JSON
     * whitespace and tab/newline padding are valid */
    const char *p = craft("n.safetensors",
                          "{ \"__metadata__\" : null, \"t\": {\"dtype\": \"F32\", \"shape\": [1], "
                          "\"data_offsets\": [0, 4]} }\n\t  ",
                          zeros, 4);
    tg_st_file f;
    OK(tg_st_read(p, &f));
    ck_assert_uint_eq(f.ntensors, 1);
    ck_assert_uint_eq(f.nmeta, 0);
    tg_st_free(&f);
}
END_TEST

/* --------------------------------------------------------------- conversion */
static float bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static void same(float got, float want, int i)
{
    ck_assert_msg((isnan(got) && isnan(want)) || memcmp(&got, &want, 4) == 0,
                  "element %d: %a, want %a", i, (double)got, (double)want);
}

START_TEST(convert_f16)
{
    const uint16_t h[] = {0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0x7bff,
                          0x7c00, 0xfc00, 0x7e00, 0xc000, 0x3555, 0x8001};
    const float want[] = {0.0f, -0.0f, 0x1p-24f, 0x3ffp-24f, 0x1p-14f, 1.0f, 65504.0f,
                          INFINITY, -INFINITY, NAN, -2.0f, 0.333251953125f, -0x1p-24f};
    enum { N = sizeof h / sizeof *h };
    unsigned char raw[2 * N + 1];
    for (int i = 0; i < N; i++) /* +1: misaligned on purpose */
        raw[1 + 2 * i] = (unsigned char)h[i], raw[2 + 2 * i] = (unsigned char)(h[i] >> 8);
    tg_st_tensor t = {.dtype = TG_ST_F16, .ndim = 1, .shape = {N}, .nelem = N, .data = raw + 1};
    float got[N];
    tg_st_to_f32(&t, got);
    for (int i = 0; i < N; i++)
        same(got[i], want[i], i);
}
END_TEST

START_TEST(convert_bf16)
{
    const uint16_t h[] = {0x3f80, 0xc040, 0x7f80, 0xff80, 0x7fc0, 0x0001, 0x8000, 0x4049};
    enum { N = sizeof h / sizeof *h };
    unsigned char raw[2 * N + 1];
    for (int i = 0; i < N; i++)
        raw[1 + 2 * i] = (unsigned char)h[i], raw[2 + 2 * i] = (unsigned char)(h[i] >> 8);
    tg_st_tensor t = {.dtype = TG_ST_BF16, .ndim = 1, .shape = {N}, .nelem = N, .data = raw + 1};
    float got[N];
    tg_st_to_f32(&t, got);
    const float want[] = {1.0f, -3.0f, INFINITY, -INFINITY, NAN, bits(0x00010000), -0.0f,
                          3.140625f};
    for (int i = 0; i < N; i++)
        same(got[i], want[i], i);
}
END_TEST

START_TEST(convert_f64)
{
    const double d[] = {1.5, -0.1, 1e300, -1e300, (double)FLT_MAX, 1e-50, NAN, -0.0,
                        (double)FLT_MAX + 0x1p102, (double)FLT_MAX + 0x1p103, 0x1p-149};
    const float want[] = {1.5f, -0.1f, INFINITY, -INFINITY, FLT_MAX, 0.0f, NAN, -0.0f,
                          FLT_MAX, INFINITY, 0x1p-149f};
    enum { N = sizeof d / sizeof *d };
    unsigned char raw[8 * N + 3];
    for (int i = 0; i < N; i++) {
        uint64_t u;
        memcpy(&u, &d[i], 8);
        for (int k = 0; k < 8; k++) /* little-endian bytes at an odd address */
            raw[3 + 8 * i + k] = (unsigned char)(u >> (8 * k));
    }
    tg_st_tensor t = {.dtype = TG_ST_F64, .ndim = 1, .shape = {N}, .nelem = N, .data = raw + 3};
    float got[N];
    tg_st_to_f32(&t, got);
    for (int i = 0; i < N; i++)
        same(got[i], want[i], i);
}
END_TEST

START_TEST(reads_all_dtypes)
{
    /* a header length that is not a multiple of 8: every tensor is misaligned */
    const char *hdr = "{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[8,10]},"
                      "\"c\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[10,12]},"
                      "\"d\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}";
    const unsigned char data[16] = {0, 0, 0, 0, 0, 0, 0xf8, 0x3f, /* 1.5 */
                                    0x40, 0xc0,                   /* -3 */
                                    0x00, 0x3c,                   /* 1 */
                                    0, 0, 0x20, 0x41};            /* 10 */
    ck_assert_uint_ne(strlen(hdr) % 8, 0);
    const char *p = craft("dt.safetensors", hdr, data, sizeof data);
    tg_st_file f;
    OK(tg_st_read(p, &f));
    const float want[] = {1.5f, -3.0f, 1.0f, 10.0f};
    const int dts[] = {TG_ST_F64, TG_ST_BF16, TG_ST_F16, TG_ST_F32};
    const char *names[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) {
        const tg_st_tensor *t = tg_st_find(&f, names[i]);
        ck_assert_ptr_nonnull(t);
        ck_assert_int_eq(t->dtype, dts[i]);
        float x;
        tg_st_to_f32(t, &x);
        ck_assert_msg(x == want[i], "%s: %g", names[i], (double)x);
    }
    tg_st_free(&f);
}
END_TEST

/* ------------------------------------------------------------ hostile files */
#define T1 "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"

START_TEST(missing_file)
{
    expect_fail(tu_path("nope.safetensors"), TG_ERR_IO, "No such file");
    mkdir(tu_path("adir"), 0700);
    expect_fail(tu_path("adir"), TG_ERR_IO, "Is a directory");
}
END_TEST

START_TEST(too_short)
{
    tu_write_file(tu_path("x.safetensors"), "", 0);
    expect_fail(tu_path("x.safetensors"), TG_ERR_FORMAT, "shorter than");
    tu_write_file(tu_path("y.safetensors"), "\x10\0\0\0\0", 5);
    expect_fail(tu_path("y.safetensors"), TG_ERR_FORMAT, "shorter than");
}
END_TEST

START_TEST(header_length_zero)
{
    expect_fail(craft_len("x.safetensors", 0, "{}", NULL, 0), TG_ERR_FORMAT, "header length is 0");
}
END_TEST

START_TEST(header_length_absurd)
{
    expect_fail(craft_len("x.safetensors", (uint64_t)1 << 40, "{}", NULL, 0), TG_ERR_FORMAT,
                "absurd");
    expect_fail(craft_len("x.safetensors", UINT64_MAX, "{}", NULL, 0), TG_ERR_FORMAT, "absurd");
}
END_TEST

START_TEST(header_length_past_end)
{
    expect_fail(craft_len("x.safetensors", 3, "{}", NULL, 0), TG_ERR_FORMAT, "past the end");
}
END_TEST

START_TEST(truncated_in_header)
{
    /* a valid file cut in the middle of its header */
    float v[2] = {1, 2};
    tg_st_entry e = {.name = "t", .ndim = 1, .shape = {2}, .data = v};
    const char *p = tu_path("full.safetensors");
    OK(tg_st_write(p, &e, 1, NULL, NULL, 0));
    size_t n;
    unsigned char *b = tu_read_file(p, &n);
    tu_write_file(tu_path("cut.safetensors"), b, 20);
    free(b);
    expect_fail(tu_path("cut.safetensors"), TG_ERR_FORMAT, "past the end of the file");
}
END_TEST

START_TEST(truncated_in_data)
{
    float v[2] = {1, 2};
    tg_st_entry e = {.name = "weights", .ndim = 1, .shape = {2}, .data = v};
    const char *p = tu_path("full.safetensors");
    OK(tg_st_write(p, &e, 1, NULL, NULL, 0));
    size_t n;
    unsigned char *b = tu_read_file(p, &n);
    tu_write_file(tu_path("cut.safetensors"), b, n - 3);
    free(b);
    expect_fail(tu_path("cut.safetensors"), TG_ERR_FORMAT, "'weights'");
    expect_fail(tu_path("cut.safetensors"), TG_ERR_FORMAT, "past the end of the data");
}
END_TEST

START_TEST(bad_json)
{
    HOSTILE("{\"t\":", NULL, 0, TG_ERR_FORMAT, "not valid JSON");
    HOSTILE("{\"t\":" T1 "} x", zeros, 8, TG_ERR_FORMAT, "not valid JSON");
    /* NUL padding is not whitespace */
    static const char nul_hdr[] = "{\"t\":" T1 "}\0\0";
    unsigned char b[8 + sizeof nul_hdr - 1 + 8] = {sizeof nul_hdr - 1};
    memcpy(b + 8, nul_hdr, sizeof nul_hdr - 1);
    tu_write_file(tu_path("nul.safetensors"), b, sizeof b);
    expect_fail(tu_path("nul.safetensors"), TG_ERR_FORMAT, "not valid JSON");
    HOSTILE("[1,2]", NULL, 0, TG_ERR_FORMAT, "not a JSON object");
    HOSTILE("\"str\"", NULL, 0, TG_ERR_FORMAT, "not a JSON object");
    /* nesting deeper than cJSON's limit must fail, not overflow the stack */
    char deep[5000];
    memset(deep, '[', 4000);
    deep[4000] = '\0';
    HOSTILE(deep, NULL, 0, TG_ERR_FORMAT, "not valid JSON");
}
END_TEST

START_TEST(entry_not_object)
{
    HOSTILE("{\"t\":5}", NULL, 0, TG_ERR_FORMAT, "'t' is not an object");
    HOSTILE("{\"t\":[1]}", NULL, 0, TG_ERR_FORMAT, "'t' is not an object");
}
END_TEST

START_TEST(entry_missing_fields)
{
    HOSTILE("{\"t\":{\"shape\":[2],\"data_offsets\":[0,8]}}", zeros, 8, TG_ERR_FORMAT,
            "lacks \"dtype\"");
    HOSTILE("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", zeros, 8, TG_ERR_FORMAT,
            "lacks \"shape\"");
    HOSTILE("{\"t\":{\"dtype\":\"F32\",\"shape\":[2]}}", zeros, 8, TG_ERR_FORMAT,
            "lacks \"data_offsets\"");
    HOSTILE("{\"t\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
            zeros, 8, TG_ERR_FORMAT, "\"dtype\" twice");
}
END_TEST

START_TEST(entry_wrong_types)
{
    HOSTILE("{\"t\":{\"dtype\":3,\"shape\":[2],\"data_offsets\":[0,8]}}", zeros, 8, TG_ERR_FORMAT,
            "dtype of tensor 't' is not a string");
    HOSTILE("{\"t\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", zeros, 8,
            TG_ERR_FORMAT, "not an array");
    HOSTILE("{\"t\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", zeros, 8,
            TG_ERR_FORMAT, "not a non-negative integer");
    HOSTILE("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", zeros, 8,
            TG_ERR_FORMAT, "not [begin, end]");
    HOSTILE("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", zeros, 8,
            TG_ERR_FORMAT, "not [begin, end]");
    HOSTILE("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{\"a\":0}}}", zeros, 8,
            TG_ERR_FORMAT, "not [begin, end]");
    HOSTILE("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", zeros, 8,
            TG_ERR_FORMAT, "not [begin, end]");
    HOSTILE("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.5]}}", zeros, 8,
            TG_ERR_FORMAT, "not [begin, end]");
}
END_TEST

START_TEST(bad_dims)
{
    HOSTILE("{\"t\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", zeros, 8,
            TG_ERR_FORMAT, "dim 0 of tensor 't' is not a non-negative integer");
    HOSTILE("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1.5],\"data_offsets\":[0,8]}}", zeros, 8,
            TG_ERR_FORMAT, "dim 1 of tensor 't'");
    HOSTILE("{\"t\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,8]}}", zeros, 8,
            TG_ERR_FORMAT, "not a non-negative integer");
    HOSTILE("{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
            "\"data_offsets\":[0,8]}}",
            zeros, 8, TG_ERR_FORMAT, "overflows");
    /* an overflowing product is rejected even when a zero dim comes first */
    HOSTILE("{\"t\":{\"dtype\":\"F32\",\"shape\":[0,4294967296,4294967296,4294967296],"
            "\"data_offsets\":[0,0]}}",
            zeros, 8, TG_ERR_FORMAT, "overflows");
    HOSTILE("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}",
            zeros, 8, TG_ERR_FORMAT, "9 dims");
}
END_TEST

START_TEST(max_dims_ok)
{
    const char *p = craft("x.safetensors",
                          "{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]},"
                          "\"z\":{\"dtype\":\"F32\",\"shape\":[3,0],\"data_offsets\":[8,8]}}",
                          zeros, 8);
    tg_st_file f;
    OK(tg_st_read(p, &f));
    ck_assert_int_eq(tg_st_find(&f, "t")->ndim, 8);
    ck_assert_uint_eq(tg_st_find(&f, "z")->nelem, 0);
    tg_st_free(&f);
}
END_TEST

START_TEST(wrong_dtype)
{
    HOSTILE("{\"ints\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}", zeros, 8,
            TG_ERR_DTYPE, "'ints' has unsupported dtype 'I32'");
    HOSTILE("{\"bytes\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", zeros, 8,
            TG_ERR_DTYPE, "'bytes' has unsupported dtype 'U8'");
    HOSTILE("{\"t\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", zeros, 8,
            TG_ERR_DTYPE, "'f32'");
}
END_TEST

START_TEST(size_mismatch)
{
    HOSTILE("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", zeros, 8,
            TG_ERR_FORMAT, "need 8");
    HOSTILE("{\"t\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", zeros, 16,
            TG_ERR_FORMAT, "need 8");
    HOSTILE("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", zeros, 8,
            TG_ERR_FORMAT, "begin > end");
}
END_TEST

START_TEST(overlapping)
{
    HOSTILE("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
            zeros, 12, TG_ERR_FORMAT, "overlap");
    /* the same bytes for two tensors */
    HOSTILE("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]}}",
            zeros, 8, TG_ERR_FORMAT, "overlap");
    /* one inside a larger one that starts earlier */
    HOSTILE("{\"big\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
            "\"mid\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
            "\"late\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
            zeros, 16, TG_ERR_FORMAT, "'big' and 'mid' overlap");
}
END_TEST

START_TEST(offsets_past_end)
{
    HOSTILE("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", zeros, 12,
            TG_ERR_FORMAT, "past the end of the data");
    HOSTILE("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[9007199254740984,"
            "9007199254740992]}}",
            zeros, 8, TG_ERR_FORMAT, "past the end of the data");
}
END_TEST

START_TEST(duplicate_names)
{
    HOSTILE("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
            "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
            zeros, 8, TG_ERR_FORMAT, "duplicate tensor name 't'");
}
END_TEST

START_TEST(bad_names)
{
    HOSTILE("{\"\":" T1 "}", zeros, 8, TG_ERR_FORMAT, "empty tensor name");
    char hdr[2000], name[1100];
    memset(name, 'n', 1025);
    name[1025] = '\0';
    snprintf(hdr, sizeof hdr, "{\"%s\":" T1 "}", name);
    HOSTILE(hdr, zeros, 8, TG_ERR_FORMAT, "limit 1024");
    name[1024] = '\0'; /* 1024 bytes is allowed */
    snprintf(hdr, sizeof hdr, "{\"%s\":" T1 "}", name);
    tg_st_file f;
    OK(tg_st_read(craft("ok.safetensors", hdr, zeros, 8), &f));
    ck_assert_ptr_nonnull(tg_st_find(&f, name));
    tg_st_free(&f);
}
END_TEST

START_TEST(bad_metadata)
{
    HOSTILE("{\"__metadata__\":{\"steps\":3}}", NULL, 0, TG_ERR_FORMAT,
            "value of 'steps' is not a string");
    HOSTILE("{\"__metadata__\":[\"a\"]}", NULL, 0, TG_ERR_FORMAT, "__metadata__ is not an object");
    HOSTILE("{\"__metadata__\":\"a\"}", NULL, 0, TG_ERR_FORMAT, "__metadata__ is not an object");
    HOSTILE("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", NULL, 0, TG_ERR_FORMAT,
            "duplicate __metadata__ key 'k'");
    HOSTILE("{\"__metadata__\":{},\"__metadata__\":{}}", NULL, 0, TG_ERR_FORMAT, "twice");
    /* a bad value after good ones, with tensors present: nothing may leak */
    HOSTILE("{\"t\":" T1 ",\"__metadata__\":{\"a\":\"1\",\"b\":\"2\",\"c\":null}}", zeros, 8,
            TG_ERR_FORMAT, "'c' is not a string");
}
END_TEST

START_TEST(error_after_tensors_parsed)
{
    /* failures late in the header must free the tensors already built */
    HOSTILE("{\"a\":" T1 ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
            "\"c\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[16,24]}}",
            zeros, 24, TG_ERR_DTYPE, "'c'");
}
END_TEST

/* ------------------------------------------------------------------ writer */
static int count_entries(const char *d)
{
    DIR *dd = opendir(d);
    ck_assert_ptr_nonnull(dd);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dd)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(dd);
    return n;
}

START_TEST(writer_duplicate_names)
{
    float v[2] = {1, 2};
    tg_st_entry e[2] = {{.name = "t", .ndim = 1, .shape = {2}, .data = v},
                        {.name = "t", .ndim = 1, .shape = {1}, .data = v}};
    const char *p = tu_path("keep.safetensors");
    OK(tg_st_write(p, e, 1, NULL, NULL, 0));
    size_t n0, n1;
    unsigned char *before = tu_read_file(p, &n0);
    ck_assert_int_eq(tg_st_write(p, e, 2, NULL, NULL, 0), TG_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "duplicate tensor name 't'"));
    const char *mk[] = {"k", "k"}, *mv[] = {"1", "2"};
    ck_assert_int_eq(tg_st_write(p, e, 1, mk, mv, 2), TG_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "duplicate metadata key 'k'"));
    unsigned char *after = tu_read_file(p, &n1);
    ck_assert_uint_eq(n0, n1);
    ck_assert_int_eq(memcmp(before, after, n0), 0);
    ck_assert_int_eq(count_entries(tu_scratch_dir()), 1);
    free(before), free(after);
}
END_TEST

START_TEST(writer_bad_arguments)
{
    float v = 1;
    tg_st_entry e = {.name = "__metadata__", .ndim = 1, .shape = {1}, .data = &v};
    const char *p = tu_path("w.safetensors");
    ck_assert_int_eq(tg_st_write(p, &e, 1, NULL, NULL, 0), TG_ERR_INVALID_ARGUMENT);
    e.name = "";
    ck_assert_int_eq(tg_st_write(p, &e, 1, NULL, NULL, 0), TG_ERR_INVALID_ARGUMENT);
    e.name = "bad\xC3";
    ck_assert_int_eq(tg_st_write(p, &e, 1, NULL, NULL, 0), TG_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(tg_last_error(), "UTF-8"));
    e.name = "t";
    e.shape[0] = -1;
    ck_assert_int_eq(tg_st_write(p, &e, 1, NULL, NULL, 0), TG_ERR_INVALID_ARGUMENT);
    e.shape[0] = 1;
    e.ndim = TG_ST_MAX_DIMS + 1;
    ck_assert_int_eq(tg_st_write(p, &e, 1, NULL, NULL, 0), TG_ERR_INVALID_ARGUMENT);
    e.ndim = 1;
    e.data = NULL;
    ck_assert_int_eq(tg_st_write(p, &e, 1, NULL, NULL, 0), TG_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(count_entries(tu_scratch_dir()), 0);
}
END_TEST

START_TEST(writer_missing_folder)
{
    float v = 1;
    tg_st_entry e = {.name = "t", .ndim = 1, .shape = {1}, .data = &v};
    const char *p = tu_path("no/such/dir/w.safetensors");
    ck_assert_int_eq(tg_st_write(p, &e, 1, NULL, NULL, 0), TG_ERR_IO);
    const char *msg = tg_last_error();
    ck_assert_msg(strstr(msg, p) && strstr(msg, "No such file"), "%s", msg);
    ck_assert_int_eq(count_entries(tu_scratch_dir()), 0);
}
END_TEST

START_TEST(writer_overwrite_leaves_no_temporary)
{
    float v1[2] = {1, 2}, v2[3] = {3, 4, 5};
    tg_st_entry e1 = {.name = "t", .ndim = 1, .shape = {2}, .data = v1};
    tg_st_entry e2 = {.name = "u", .ndim = 1, .shape = {3}, .data = v2};
    const char *p = tu_path("ow.safetensors");
    OK(tg_st_write(p, &e1, 1, NULL, NULL, 0));
    OK(tg_st_write(p, &e2, 1, NULL, NULL, 0));
    ck_assert_int_eq(count_entries(tu_scratch_dir()), 1); /* only ow.safetensors */
    tg_st_file f;
    OK(tg_st_read(p, &f));
    ck_assert_uint_eq(f.ntensors, 1);
    ck_assert_ptr_null(tg_st_find(&f, "t"));
    float x[3];
    tg_st_to_f32(tg_st_find(&f, "u"), x);
    ck_assert(x[0] == 3 && x[1] == 4 && x[2] == 5);
    tg_st_free(&f);
    /* a relative path (folder ".") works too */
    char cwd[512];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(tu_scratch_dir()), 0);
    tg_status s = tg_st_write("rel.safetensors", &e1, 1, NULL, NULL, 0);
    ck_assert_int_eq(chdir(cwd), 0);
    ck_assert_msg(s == TG_OK, "%s", tg_last_error());
    ck_assert_int_eq(count_entries(tu_scratch_dir()), 2);
}
END_TEST

START_TEST(writer_failed_rename_cleans_up)
{
    /* the target is a non-empty folder: the temporary is written, the rename
     * fails, and the temporary must be gone with the folder untouched; this
     * works as root, unlike permission tricks */
    const char *p = tu_path("target.safetensors");
    ck_assert_int_eq(mkdir(p, 0700), 0);
    char inside[300];
    snprintf(inside, sizeof inside, "%s/keep", p);
    tu_write_file(inside, "x", 1);
    float v[2] = {1, 2};
    tg_st_entry e = {.name = "t", .ndim = 1, .shape = {2}, .data = v};
    ck_assert_int_eq(tg_st_write(p, &e, 1, NULL, NULL, 0), TG_ERR_IO);
    const char *msg = tg_last_error();
    ck_assert_msg(strstr(msg, p) && strstr(msg, "rename"), "%s", msg);
    ck_assert_int_eq(count_entries(tu_scratch_dir()), 1);
    ck_assert_int_eq(count_entries(p), 1);
    struct stat st;
    ck_assert_int_eq(stat(inside, &st), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("safetensors");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, round_trip_empty);
    tcase_add_test(tc, writer_matches_reference_bytes);
    tcase_add_test(tc, reads_reference_file);
    tcase_add_test(tc, null_metadata_and_whitespace);
    tcase_add_test(tc, convert_f16);
    tcase_add_test(tc, convert_bf16);
    tcase_add_test(tc, convert_f64);
    tcase_add_test(tc, reads_all_dtypes);
    tcase_add_test(tc, missing_file);
    tcase_add_test(tc, too_short);
    tcase_add_test(tc, header_length_zero);
    tcase_add_test(tc, header_length_absurd);
    tcase_add_test(tc, header_length_past_end);
    tcase_add_test(tc, truncated_in_header);
    tcase_add_test(tc, truncated_in_data);
    tcase_add_test(tc, bad_json);
    tcase_add_test(tc, entry_not_object);
    tcase_add_test(tc, entry_missing_fields);
    tcase_add_test(tc, entry_wrong_types);
    tcase_add_test(tc, bad_dims);
    tcase_add_test(tc, max_dims_ok);
    tcase_add_test(tc, wrong_dtype);
    tcase_add_test(tc, size_mismatch);
    tcase_add_test(tc, overlapping);
    tcase_add_test(tc, offsets_past_end);
    tcase_add_test(tc, duplicate_names);
    tcase_add_test(tc, bad_names);
    tcase_add_test(tc, bad_metadata);
    tcase_add_test(tc, error_after_tensors_parsed);
    tcase_add_test(tc, writer_duplicate_names);
    tcase_add_test(tc, writer_bad_arguments);
    tcase_add_test(tc, writer_missing_folder);
    tcase_add_test(tc, writer_overwrite_leaves_no_temporary);
    tcase_add_test(tc, writer_failed_rename_cleans_up);
    suite_add_tcase(s, tc);
    return tu_run(s) ? 1 : 0;
}
