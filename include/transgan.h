/*
 * transgan.h - libtransgan: TransGAN (a GAN of two transformers) in C.
 *
 * One public header, a stable C ABI. A model is an opaque handle created from a
 * JSON descriptor (see docs/DESCRIPTOR.md) or loaded from a safetensors
 * checkpoint (docs/CHECKPOINT.md); it samples images and scores them.
 *
 *   tg_model *m = NULL;
 *   if (tg_model_load("fmnist.safetensors", &m) != TG_OK) {
 *       fprintf(stderr, "%s\n", tg_last_error());
 *       return 1;
 *   }
 *   float z[4 * 256];                                 // 4 x latent_dim
 *   tg_latent_sample(m, 7, 4, z, 4 * 256);
 *   uint8_t px[4 * 32 * 32 * 4];
 *   tg_generate_pixels(m, z, 4, TG_GEN_EMA, TG_PIXEL_RGBA8, px, sizeof px);
 *   tg_model_destroy(m);
 *
 * Error handling. Every fallible function returns a tg_status; TG_OK is 0.
 * On failure tg_last_error() returns a message for the calling thread that
 * says what went wrong (for descriptors, the key path or line:column). Output
 * handles and values (tg_model **out, int64_t *value) are cleared on entry, so
 * on failure they hold NULL or 0. Output buffers may be partly written when a
 * call fails; tg_train_step writes *stats only on success.
 *
 * Ownership. Handles are created by tg_*_create / tg_model_load* and released by
 * tg_model_destroy, which accepts NULL. Buffers passed in stay the caller's; the
 * library never keeps a pointer to them after the call returns (only the
 * all-reduce function and user pointer of tg_model_set_data_parallel are
 * kept, until replaced or the model is destroyed). Strings returned as
 * const char * are owned by the library: status strings are static;
 * tg_last_error() stays valid until the next tg_ call on the same thread;
 * tg_model_descriptor() stays valid until the model is destroyed.
 *
 * Threading. Functions without a model argument are thread-safe. A model may be
 * used from any thread, but from one thread at a time: calls on the same model
 * must not overlap (serialise them yourself). Different models may be used
 * concurrently. Computation runs on OpenMP threads (shared with oneDNN) started
 * by the calling thread. Their number is the model's tg_model_set_threads()
 * count, or by default the calling thread's OpenMP maximum at the time of the
 * call (OMP_NUM_THREADS unless changed with omp_set_num_threads) lowered to the
 * CPUs not busy with other threads and processes at that moment, so that a
 * call on a busy host runs on fewer threads instead of stalling at OpenMP
 * barriers (TG_DYNAMIC_THREADS=0 in the environment turns this off). The
 * library keeps oneDNN primitives per thread count, so changing it is safe;
 * the first call with a new count builds them again. Float rounding may depend
 * on the count: fix it (tg_model_set_threads) for bit-identical reruns.
 *
 * Numbers. Images are float32 NCHW with values in [-1, 1]; 8-bit pixels are
 * interleaved rows (HWC) with value = round((x + 1) * 127.5), clamped.
 *
 * ABI. Within one major version only additions are made: no function changes
 * its signature or meaning, no enum value is renumbered. See docs/ABI.md.
 *
 * docs/API.md documents every declaration below; docs/SPECIFICATION.md
 * specifies the model, the descriptor, the checkpoint format, DiffAugment and
 * the training step that this header's comments refer to by section name.
 */
#ifndef TRANSGAN_H
#define TRANSGAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  define TG_API
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define TG_API __attribute__((visibility("default")))
#else
#  define TG_API
#endif

/* ------------------------------------------------------------------ version */

#define TG_VERSION_MAJOR 0
#define TG_VERSION_MINOR 1
#define TG_VERSION_PATCH 0
#define TG_VERSION_NUMBER (TG_VERSION_MAJOR * 10000 + TG_VERSION_MINOR * 100 + TG_VERSION_PATCH)
#define TG_VERSION_STRING "0.1.0"

/* The version of the library that is running (compare with TG_VERSION_NUMBER,
 * the one compiled against). Since 0.1.0. */
TG_API uint32_t tg_version(void);
/* "MAJOR.MINOR.PATCH" of the running library; static. Since 0.1.0. */
TG_API const char *tg_version_string(void);

/* ------------------------------------------------------------------- status */

/* The result of every fallible call. Values are pinned: they never change
 * meaning or number. New ones are added at the end; an old one that is no
 * longer produced keeps its number. Since 0.1.0. */
typedef enum tg_status {
    TG_OK = 0,
    TG_ERR_INVALID_ARGUMENT = 1, /* NULL pointer, impossible size, bad flag     */
    TG_ERR_OUT_OF_MEMORY = 2,    /* an allocation failed                        */
    TG_ERR_IO = 3,               /* a file could not be opened, read or written */
    TG_ERR_DESCRIPTOR = 4,       /* malformed or invalid model descriptor       */
    TG_ERR_FORMAT = 5,           /* malformed checkpoint (truncated, bad header)*/
    TG_ERR_DTYPE = 6,            /* a checkpoint tensor has an unsupported dtype*/
    TG_ERR_SHAPE = 7,            /* a tensor's shape disagrees with the model   */
    TG_ERR_MISSING = 8,          /* a tensor the model needs is not in the file */
    TG_ERR_NONFINITE = 9,        /* NaN or Inf in weights, inputs or results    */
    TG_ERR_BACKEND = 10,         /* oneDNN failed or has no implementation      */
    TG_ERR_UNSUPPORTED = 11,     /* valid request this build cannot serve       */
    TG_ERR_STATE = 12,           /* the call does not fit the model's state     */
    TG_ERR_INTERNAL = 13         /* a bug in libtransgan; please report it      */
} tg_status;

/* A static English name for a status, never NULL ("unknown status" for values
 * this version does not know). Since 0.1.0. */
TG_API const char *tg_status_string(tg_status status);

/* The message of the last tg_ call on this thread that failed; every fallible
 * call clears it on entry, so after a successful call it is "". Calls that
 * cannot fail (tg_version*, tg_status_string, tg_last_error,
 * tg_model_descriptor, tg_model_destroy) leave it as it is. Since 0.1.0. */
TG_API const char *tg_last_error(void);

/* -------------------------------------------------------------------- model */

/* A generator, a discriminator, their EMA and training state. Opaque.
 * Since 0.1.0. */
typedef struct tg_model tg_model;

/* Pass as `seed` to initialise from the descriptor's training.seed. Since 0.1.0. */
#define TG_SEED_FROM_DESCRIPTOR UINT64_MAX

/* Create a model from descriptor JSON text (NUL-terminated) with freshly
 * initialised weights (the official TransGAN recipe) drawn from `seed`.
 * Statuses: INVALID_ARGUMENT, DESCRIPTOR, OUT_OF_MEMORY, BACKEND. Since 0.1.0. */
TG_API tg_status tg_model_create(const char *descriptor_json, uint64_t seed, tg_model **out);

/* The same, reading the descriptor from a file (at most 64 MiB). Statuses:
 * INVALID_ARGUMENT, IO, DESCRIPTOR, OUT_OF_MEMORY, BACKEND. Since 0.1.0. */
TG_API tg_status tg_model_create_from_file(const char *descriptor_path, uint64_t seed,
                                           tg_model **out);

/* Release a model and everything it owns. NULL is a no-op. Since 0.1.0. */
TG_API void tg_model_destroy(tg_model *model);

/* The full descriptor (defaults filled in) as compact JSON, owned by the model.
 * NULL if model is NULL. Since 0.1.0. */
TG_API const char *tg_model_descriptor(const tg_model *model);

/* Facts about a model, read one at a time (keys are pinned like statuses).
 * Since 0.1.0. */
typedef enum tg_info {
    TG_INFO_IMAGE_SIZE = 1,        /* S: images are S x S                   */
    TG_INFO_CHANNELS = 2,          /* 1, 3 or 4                             */
    TG_INFO_LATENT_DIM = 3,        /* length of one z                       */
    TG_INFO_G_PARAMS = 4,          /* generator parameter count             */
    TG_INFO_D_PARAMS = 5,          /* discriminator parameter count         */
    TG_INFO_D_STEPS = 6,           /* discriminator updates so far          */
    TG_INFO_G_STEPS = 7,           /* generator updates so far              */
    TG_INFO_HAS_EMA = 8,           /* 1 if the model keeps an EMA generator */
    TG_INFO_D_BATCH = 9,           /* training.d_batch                      */
    TG_INFO_G_BATCH = 10,          /* training.g_batch                      */
    TG_INFO_THREADS = 11,          /* tg_model_set_threads's count (0: the
                                      caller's OpenMP maximum), since 0.1.0 */
    TG_INFO_SAMPLING_ONLY = 12,    /* 1 if loaded with TG_LOAD_SAMPLING_ONLY,
                                      since 0.1.0 */
    TG_INFO_PRECISION = 13,        /* the inference precision in effect
                                      (tg_precision), since 0.1.0 */
    TG_INFO_NUM_CLASSES = 14,      /* the descriptor's num_classes: 0 for an
                                      unconditional model, K for a
                                      class-conditional one (labels 0 .. K-1),
                                      since 0.1.0 */
    TG_INFO_D_KIND = 15,           /* discriminator.kind: 0 "transformer",
                                      1 "conv", since 0.1.0 */
    TG_INFO_TRAIN_PRECISION = 16   /* the training precision in effect
                                      (tg_precision): training.precision,
                                      or 0 (f32) where the CPU lacks
                                      AVX512-BF16, since 0.1.0 */
} tg_info;

/* Read one fact into *value. Statuses: INVALID_ARGUMENT. Since 0.1.0. */
TG_API tg_status tg_model_info(const tg_model *model, tg_info key, int64_t *value);

/* The name of class k (0 <= k < TG_INFO_NUM_CLASSES) from the descriptor's
 * class_names (kept in checkpoints with the descriptor), owned by the model
 * and valid until it is destroyed. NULL when model is NULL, k is out of
 * range, or the model has no class names. Cannot fail: leaves
 * tg_last_error() as it is. Since 0.1.0. */
TG_API const char *tg_model_class_name(const tg_model *model, int64_t k);

/* The number of threads the model computes on. n >= 1 fixes it: for the
 * duration of each computing call the calling thread's OpenMP maximum is set
 * to n, and restored afterwards. n = 0, the default, uses the calling
 * thread's OpenMP maximum lowered to the CPUs free at each call (see
 * Threading above). Results do not depend on it beyond float rounding.
 * Statuses: INVALID_ARGUMENT (NULL model, n < 0 or n > 4096). Since 0.1.0. */
TG_API tg_status tg_model_set_threads(tg_model *model, int n);

/* Arithmetic of inference (tg_generate, tg_generate_pixels, tg_discriminate).
 * Since 0.1.0. */
typedef enum tg_precision {
    TG_PRECISION_F32 = 0,  /* float32 throughout (the default)              */
    TG_PRECISION_BF16 = 1  /* matrix products in bfloat16 with float32
                              accumulation, on CPUs with AVX512-BF16        */
} tg_precision;

/* Set the model's inference precision. TG_PRECISION_BF16 runs the Linear
 * layers as bf16 x bf16 -> f32 products and the long-sequence attention with
 * bf16 dot products; norms, softmax sums, the residual stream and the outer
 * layers stay f32. Pixels stay within 2 levels of f32's. Each weight array is
 * converted to bf16 once, by the first call that reads it (half its size
 * again in memory; that call may then fail with OUT_OF_MEMORY), and again
 * after tg_train_step (which always trains in f32) or tg_model_load_weights
 * changed it. On a CPU without AVX512-BF16 (or with ONEDNN_MAX_CPU_ISA below
 * AVX512_CORE_BF16) the call still returns TG_OK and the model stays in f32:
 * TG_INFO_PRECISION says which is in effect. Statuses: INVALID_ARGUMENT (NULL
 * model, unknown precision; the model unchanged). Since 0.1.0. */
TG_API tg_status tg_model_set_precision(tg_model *model, tg_precision precision);

/* --------------------------------------------------------------- checkpoints */

/* Load a safetensors checkpoint written by this library or by the reference
 * (its metadata carries the descriptor). Weights-only files load too; missing
 * EMA or optimiser state starts fresh. Statuses: INVALID_ARGUMENT, IO, FORMAT,
 * DTYPE, SHAPE, MISSING, NONFINITE, DESCRIPTOR, OUT_OF_MEMORY, BACKEND.
 * Since 0.1.0. */
TG_API tg_status tg_model_load(const char *path, tg_model **out);

/* Flags of tg_model_load_ex and tg_model_load_memory. Since 0.1.0. */
#define TG_LOAD_SAMPLING_ONLY 1u /* keep only what sampling needs: the EMA
                                    generator where the file has it, else the
                                    raw generator; no discriminator, no
                                    optimiser state, no training buffers */

/* tg_model_load with flags: 0 or TG_LOAD_* bits; other bits are rejected.
 * Everything the load needs is checked (tensor names, shapes, dtypes and
 * offsets against the metadata descriptor) before the model is allocated.
 * On a TG_LOAD_SAMPLING_ONLY model, tg_discriminate, tg_train_step,
 * tg_model_save, tg_model_load_weights and TG_GEN_RAW without the raw
 * generator fail with TG_ERR_STATE. Statuses: INVALID_ARGUMENT, IO, FORMAT,
 * DTYPE, SHAPE, MISSING, NONFINITE, DESCRIPTOR, OUT_OF_MEMORY, BACKEND.
 * Since 0.1.0. */
TG_API tg_status tg_model_load_ex(const char *path, uint32_t flags, tg_model **out);

/* tg_model_load_ex from the checkpoint's bytes data[0 .. size), e.g. an
 * asset of a packed file; the library reads them only during the call.
 * Statuses: INVALID_ARGUMENT, FORMAT, DTYPE, SHAPE, MISSING, NONFINITE,
 * DESCRIPTOR, OUT_OF_MEMORY, BACKEND. Since 0.1.0. */
TG_API tg_status tg_model_load_memory(const void *data, size_t size, uint32_t flags,
                                      tg_model **out);

/* Replace the weights and the training state of an existing model from a
 * checkpoint; the file's tensors must fit this model's shapes (its descriptor
 * metadata is not used). State the file lacks is reset, not kept: EMA = the
 * loaded generator, Adam moments = 0, step counters = 0; only the RNG keeps
 * its state when the file has no rng_state. On failure the model is
 * unchanged. Statuses: INVALID_ARGUMENT, IO, FORMAT, DTYPE, SHAPE, MISSING,
 * NONFINITE, OUT_OF_MEMORY, STATE (a sampling-only model). Since 0.1.0. */
TG_API tg_status tg_model_load_weights(tg_model *model, const char *path);

/* Flags of tg_model_save; 0 saves everything (weights, EMA, Adam moments,
 * step counters, RNG state). The step counters are always saved. With both
 * flags, TG_SAVE_WEIGHTS_ONLY wins. Since 0.1.0. */
#define TG_SAVE_WEIGHTS_ONLY 1u /* no EMA, no optimiser moments, no RNG state */
#define TG_SAVE_NO_OPTIMIZER 2u /* weights and EMA, no optimiser moments, no RNG
                                   state: a smaller file for sharing a trained
                                   model */

/* Write the model to `path` as safetensors, atomically: a temporary file in the
 * same folder is written, flushed to disk and renamed over `path`, so a crash
 * never leaves a half-written checkpoint. `flags`: 0 or TG_SAVE_* bits; other
 * bits are rejected. Statuses: INVALID_ARGUMENT, IO, OUT_OF_MEMORY, STATE (a
 * sampling-only model: it lacks the discriminator a checkpoint holds).
 * Since 0.1.0. */
TG_API tg_status tg_model_save(tg_model *model, const char *path, uint32_t flags);

/* ----------------------------------------------------------------- sampling */

/* Flags of the generate calls. Since 0.1.0. */
#define TG_GEN_EMA 0u /* the EMA generator where the model has one (default) */
#define TG_GEN_RAW 1u /* the generator's current weights                     */

/* Fill z[0 .. n*latent_dim) with standard normal numbers drawn from `seed`
 * (the same seed always gives the same z). z_len counts floats.
 * Statuses: INVALID_ARGUMENT. Since 0.1.0. */
TG_API tg_status tg_latent_sample(const tg_model *model, uint64_t seed, size_t n, float *z,
                                  size_t z_len);

/* Generate n images from z [n, latent_dim] into out [n, C, S, S] (float32, NCHW,
 * in [-1, 1] when output is "tanh"; roughly so otherwise). out_len counts
 * floats and must be at least n*C*S*S. Any n works in bounded memory (large n
 * are computed in slices). Statuses: INVALID_ARGUMENT, NONFINITE (z holds NaN
 * or Inf, or the generator produced them), OUT_OF_MEMORY, BACKEND, STATE
 * (TG_GEN_RAW on a sampling-only model that kept the EMA). Since 0.1.0. */
TG_API tg_status tg_generate(tg_model *model, const float *z, size_t n, uint32_t flags,
                             float *out, size_t out_len);

/* tg_generate for a class-conditional model (docs/SPECIFICATION.md "Class
 * conditioning"): image i shows class labels[i], in 0 .. num_classes-1.
 * labels = NULL gives every image a class derived from its z alone (a hash of
 * z[i]'s float bits modulo num_classes: the same z always gives the same
 * class, whatever n or the slicing), which is also what tg_generate does on a
 * conditional model. On an unconditional model labels must be NULL (then it is
 * tg_generate). Statuses: INVALID_ARGUMENT (also a label out of range, or
 * labels on an unconditional model), NONFINITE, OUT_OF_MEMORY, BACKEND, STATE.
 * Since 0.1.0. */
TG_API tg_status tg_generate_labels(tg_model *model, const float *z, const int32_t *labels,
                                    size_t n, uint32_t flags, float *out, size_t out_len);

/* 8-bit interleaved pixel layouts; the value is the bytes per pixel.
 * Since 0.1.0. */
typedef enum tg_pixel_format {
    TG_PIXEL_GRAY8 = 1,
    TG_PIXEL_RGB8 = 3,
    TG_PIXEL_RGBA8 = 4
} tg_pixel_format;

/* Convert float NCHW images in [-1, 1] with `channels` channels (1, 3, 4) to
 * 8-bit pixels [n, S, S, bpp]: round((x + 1) * 127.5) clamped to 0..255,
 * NaN gives 0. Grey becomes R=G=B; colour becomes grey by BT.601 luma; a
 * missing alpha is 255; a dropped alpha is discarded.
 * Statuses: INVALID_ARGUMENT. Since 0.1.0. */
TG_API tg_status tg_images_to_pixels(const float *images, size_t n, int channels, int size,
                                     tg_pixel_format format, uint8_t *out, size_t out_len);

/* tg_generate followed by tg_images_to_pixels; out_len counts bytes.
 * Statuses: INVALID_ARGUMENT, NONFINITE, OUT_OF_MEMORY, BACKEND, STATE.
 * Since 0.1.0. */
TG_API tg_status tg_generate_pixels(tg_model *model, const float *z, size_t n, uint32_t flags,
                                    tg_pixel_format format, uint8_t *out, size_t out_len);

/* tg_generate_pixels with labels as in tg_generate_labels. Statuses:
 * INVALID_ARGUMENT, NONFINITE, OUT_OF_MEMORY, BACKEND, STATE. Since 0.1.0. */
TG_API tg_status tg_generate_pixels_labels(tg_model *model, const float *z,
                                           const int32_t *labels, size_t n, uint32_t flags,
                                           tg_pixel_format format, uint8_t *out,
                                           size_t out_len);

/* Score n images [n, C, S, S] with the discriminator: scores[i] is D's raw
 * output (higher = more real). Statuses: INVALID_ARGUMENT, NONFINITE,
 * OUT_OF_MEMORY, BACKEND, STATE (a sampling-only model). Since 0.1.0. */
TG_API tg_status tg_discriminate(tg_model *model, const float *images, size_t n, float *scores,
                                 size_t scores_len);

/* tg_discriminate with each image's class: on a conditional model the score
 * includes the projection term <class_embed[labels[i]], h_i>, which
 * tg_discriminate (and labels = NULL here) leaves out. On an unconditional
 * model labels must be NULL. Statuses: INVALID_ARGUMENT (also a label out of
 * range, or labels on an unconditional model), NONFINITE, OUT_OF_MEMORY,
 * BACKEND, STATE. Since 0.1.0. */
TG_API tg_status tg_discriminate_labels(tg_model *model, const float *images,
                                        const int32_t *labels, size_t n, float *scores,
                                        size_t scores_len);

/* ----------------------------------------------------------------- training */

/* What one tg_train_step did. Set struct_size = sizeof(tg_train_stats) before
 * the call: later versions append fields and fill only what the caller's
 * struct has room for (struct_size is left as set; below 8, i.e. not even the
 * two uint32_t fields, the call fails with INVALID_ARGUMENT). Since 0.1.0. */
typedef struct tg_train_stats {
    uint32_t struct_size;     /* in: sizeof(tg_train_stats)                        */
    uint32_t g_updated;       /* 1 if this call also updated the generator         */
    uint64_t d_steps;         /* discriminator updates so far (this one included)  */
    uint64_t g_steps;         /* generator updates so far                          */
    double d_loss;            /* discriminator loss, penalty and drift included    */
    double gp;                /* gradient penalty; R1 when applied; else 0         */
    double d_real;            /* mean D score of the (augmented) real batch        */
    double d_fake;            /* mean D score of the (augmented) fake batch        */
    double g_loss;            /* generator loss incl. MT-CT term; NaN if no G step */
    double sr_loss;           /* MT-CT mean squared error (0 when off or no G step)*/
    double d_grad_norm;       /* D's global gradient L2 norm before clipping       */
    double g_grad_norm;       /* G's, before clipping; NaN if no G step            */
} tg_train_stats;

/* One training step (docs/SPECIFICATION.md, "Training step"): one
 * discriminator update on the real batch `real` [n, C, S, S] (n must equal
 * training.d_batch), then, when that update is the model's 1st,
 * (n_critic+1)th, ... (counted by d_steps, which checkpoints keep), one
 * generator update, then the EMA update.
 * The step's noise may be given (z_d [d_batch, latent_dim], z_g [g_batch,
 * latent_dim], alpha [d_batch], the penalty's interpolation weights); NULL
 * draws it from the model's RNG (seeded by training.seed, saved in
 * checkpoints). DiffAugment's draws always come from the model's RNG.
 * `stats` may be NULL. If anything becomes NaN or infinite the call returns
 * TG_ERR_NONFINITE; on this or any other failure the model is exactly as
 * before the call and *stats is not written. Under tg_model_set_data_parallel
 * n is d_batch / world and z_d, z_g, alpha are the replica's rows.
 * Statuses: INVALID_ARGUMENT, NONFINITE, OUT_OF_MEMORY, BACKEND, IO (a data-
 * parallel all-reduce failed), STATE (a sampling-only model). Since 0.1.0. */
TG_API tg_status tg_train_step(tg_model *model, const float *real, size_t n, const float *z_d,
                               const float *z_g, const float *alpha, tg_train_stats *stats);

/* ------------------------------------------------------------ data parallel */

/* What the buffer handed to a tg_allreduce_fn holds. A flat gradient holds
 * every tensor of the network, each padded to a multiple of 16 floats (the
 * padding is 0): a little more than TG_INFO_D_PARAMS / TG_INFO_G_PARAMS
 * floats. Since 0.1.0. */
typedef enum tg_allreduce_kind {
    TG_ALLREDUCE_D_GRAD = 1, /* the discriminator's flat gradient                 */
    TG_ALLREDUCE_G_GRAD = 2, /* the generator's flat gradient                     */
    TG_ALLREDUCE_STATS = 3   /* loss statistics and score sums, at most 8 floats  */
} tg_allreduce_kind;

/* An all-reduce supplied by the caller (MPI, Gloo, threads...): replace
 * buf[0 .. n) on every replica by the element-wise sum of the replicas'
 * buffers, the same bits on every replica (MPI_Allreduce with MPI_SUM on
 * MPI_FLOAT does this). Called from the thread that called tg_train_step,
 * in the same order and with the same kinds and sizes on every replica.
 * Return 0 on success; anything else fails the step with TG_ERR_IO.
 * Since 0.1.0. */
typedef int (*tg_allreduce_fn)(void *user, tg_allreduce_kind kind, float *buf, size_t n);

/* Make the model one replica, `rank` of `world`, of a data-parallel
 * training group. Each replica's tg_train_step then takes its share of the
 * global batch: n = training.d_batch / world real images, rows [rank * n,
 * (rank + 1) * n) of the global batch, and likewise of g_batch (given z_d,
 * z_g and alpha are the replica's rows too). The noise and DiffAugment draws
 * of the whole global batch come from the model's RNG on every replica, which
 * keeps its rows, so replicas that start identical (same descriptor and seed,
 * or the same checkpoint) stay identical: before each optimiser update the
 * library hands `allreduce` the network's flat gradient and the step's
 * statistics, and divides the sums by `world`. N replicas with batch B / N
 * reproduce one model with batch B up to float summation order
 * (docs/DISTRIBUTED.md). world = 1 turns it off (allreduce and user are
 * then ignored). A step that fails on one replica before an all-reduce
 * leaves the others waiting in theirs: the all-reduce engine must stop them
 * (MPI aborts the job). Statuses: INVALID_ARGUMENT (NULL model, world < 1,
 * rank outside 0 .. world-1, NULL allreduce with world > 1, world not
 * dividing d_batch and g_batch), STATE (a sampling-only model). Since 0.1.0. */
TG_API tg_status tg_model_set_data_parallel(tg_model *model, int rank, int world,
                                            tg_allreduce_fn allreduce, void *user);
/* The classes of a tg_train_step_labels call. Set struct_size =
 * sizeof(tg_train_labels): later versions may append fields and read only
 * what the caller's struct holds. Since 0.1.0. */
typedef struct tg_train_labels {
    uint32_t struct_size;   /* in: sizeof(tg_train_labels)                          */
    uint32_t reserved;      /* 0                                                    */
    const int32_t *real;    /* [d_batch] the real batch's classes (required on a
                               conditional model)                                  */
    const int32_t *fake_d;  /* [d_batch] classes of the discriminator update's
                               fakes, or NULL: drawn uniformly from the model's RNG */
    const int32_t *fake_g;  /* [g_batch] classes of the generator update's fakes,
                               or NULL: drawn likewise                              */
} tg_train_labels;

/* tg_train_step for a class-conditional model (docs/SPECIFICATION.md "Class
 * conditioning"): the real batch's classes are required; fakes take the given
 * classes or uniformly drawn ones (from the model's RNG: D's after alpha, G's
 * after z_g); the penalty's interpolates take the real classes. On an
 * unconditional model `labels` must be NULL or hold only NULL arrays (then it
 * is tg_train_step); tg_train_step on a conditional model fails with
 * INVALID_ARGUMENT. A data-parallel replica (tg_model_set_data_parallel) gives
 * its share: n = d_batch / world, fake_g of g_batch / world; drawn classes
 * follow the noise's rule (the global batch's draw, the replica's rows). Failure leaves the model as before, as for tg_train_step.
 * Statuses: INVALID_ARGUMENT (also a missing labels->real on a conditional
 * model, labels on an unconditional one, a label out of range or an unset
 * struct_size), NONFINITE, OUT_OF_MEMORY, BACKEND, STATE, IO (a data-parallel
 * all-reduce failed). Since 0.1.0. */
TG_API tg_status tg_train_step_labels(tg_model *model, const float *real, size_t n,
                                      const tg_train_labels *labels, const float *z_d,
                                      const float *z_g, const float *alpha,
                                      tg_train_stats *stats);

#ifdef __cplusplus
}
#endif
#endif /* TRANSGAN_H */
