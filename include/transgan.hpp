/*
 * transgan.hpp - header-only C++17 wrapper of libtransgan's C API.
 *
 * Every C++ program that embeds the library would otherwise write the same
 * deleter, the same exception class and the same size arithmetic; this header
 * does it once. It adds no symbol to the library and no ABI: it only calls the
 * functions of transgan.h, so it works with any 0.x library that has them.
 *
 *   #include <transgan.hpp>
 *
 *   transgan::model m = transgan::model::load("fmnist.safetensors");
 *   std::vector<float> z = m.latent(7, 4);            // 4 latents from seed 7
 *   std::vector<uint8_t> rgba = m.generate_pixels(z, TG_PIXEL_RGBA8);
 *   // rgba.size() == 4 * S * S * 4
 *
 * Errors: every failing call throws transgan::error, a std::runtime_error whose
 * what() is tg_last_error() and whose status() is the tg_status. Sizes are
 * checked against the model before the C call, so a too-short buffer throws
 * (TG_ERR_INVALID_ARGUMENT) rather than writing out of bounds.
 *
 * Ownership: transgan::model owns its tg_model (move-only; destroyed with the
 * object). get() lends the raw handle to C calls this header does not wrap;
 * release() gives it up.
 *
 * Threading: as in transgan.h, one model is used from one thread at a time.
 *
 * Views: functions that read arrays take transgan::view<const T>, which a
 * std::vector, a std::array, a C array or a (pointer, count) pair converts to
 * (C++17 has no std::span; with C++20, a std::span converts too).
 */
#ifndef TRANSGAN_HPP
#define TRANSGAN_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <transgan.h>

namespace transgan {

/* A failed libtransgan call: the status and the library's message. */
class error : public std::runtime_error {
public:
    error(tg_status status, const std::string &message)
        : std::runtime_error(message.empty() ? std::string(tg_status_string(status)) : message),
          status_(status) {}
    /* the tg_status the call returned */
    tg_status status() const noexcept { return status_; }
    /* tg_status_string(status()) */
    const char *status_name() const noexcept { return tg_status_string(status_); }

private:
    tg_status status_;
};

/* Throw transgan::error if `status` is not TG_OK (message: tg_last_error()). */
inline void check(tg_status status)
{
    if (status != TG_OK)
        throw error(status, tg_last_error());
}

/* A read-only view of `size` contiguous elements: what std::span<const T> is
 * in C++20, kept to the two members this header needs. */
template <typename T> class view {
public:
    constexpr view() noexcept = default;
    constexpr view(T *data, std::size_t size) noexcept : data_(data), size_(size) {}
    template <typename U, typename A,
              typename = std::enable_if_t<std::is_same_v<std::remove_const_t<T>, U>>>
    view(const std::vector<U, A> &v) noexcept : data_(v.data()), size_(v.size()) {}
    template <typename U, std::size_t N,
              typename = std::enable_if_t<std::is_same_v<std::remove_const_t<T>, U>>>
    constexpr view(const std::array<U, N> &a) noexcept : data_(a.data()), size_(N) {}
    template <std::size_t N> constexpr view(T (&a)[N]) noexcept : data_(a), size_(N) {}
    /* anything with data() and size() of T (std::span in C++20, and the like) */
    template <typename C, typename = std::enable_if_t<std::is_convertible_v<
                              decltype(std::declval<const C &>().data()), T *>>,
              typename = decltype(std::declval<const C &>().size()),
              typename = std::enable_if_t<!std::is_same_v<std::decay_t<C>, view>>>
    constexpr view(const C &c) noexcept : data_(c.data()), size_(c.size()) {}

    constexpr T *data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }

private:
    T *data_ = nullptr;
    std::size_t size_ = 0;
};

/* The owner of one tg_model. */
class model {
public:
    /* an empty handle (holds no model; every call on it throws) */
    model() noexcept = default;
    /* adopt a handle made by the C API; the model destroys it */
    explicit model(tg_model *adopt) noexcept : m_(adopt) {}

    /* tg_model_create: fresh weights from descriptor JSON text */
    static model create(const std::string &descriptor_json,
                        std::uint64_t seed = TG_SEED_FROM_DESCRIPTOR)
    {
        tg_model *m = nullptr;
        check(tg_model_create(descriptor_json.c_str(), seed, &m));
        return model(m);
    }
    /* tg_model_create_from_file */
    static model create_from_file(const std::string &descriptor_path,
                                  std::uint64_t seed = TG_SEED_FROM_DESCRIPTOR)
    {
        tg_model *m = nullptr;
        check(tg_model_create_from_file(descriptor_path.c_str(), seed, &m));
        return model(m);
    }
    /* tg_model_load_ex: a safetensors checkpoint; flags 0 or
     * TG_LOAD_SAMPLING_ONLY (only the generator sampling uses is kept) */
    static model load(const std::string &path, std::uint32_t flags = 0)
    {
        tg_model *m = nullptr;
        check(tg_model_load_ex(path.c_str(), flags, &m));
        return model(m);
    }
    /* tg_model_load_memory: a checkpoint's bytes (e.g. a packed asset), read
     * only during the call */
    static model load_memory(const void *data, std::size_t size, std::uint32_t flags = 0)
    {
        tg_model *m = nullptr;
        check(tg_model_load_memory(data, size, flags, &m));
        return model(m);
    }
    static model load_memory(view<const std::uint8_t> bytes, std::uint32_t flags = 0)
    {
        return load_memory(bytes.data(), bytes.size(), flags);
    }

    /* tg_model_load_weights (the model is unchanged when it throws) */
    void load_weights(const std::string &path) { check(tg_model_load_weights(handle(), path.c_str())); }
    /* tg_model_save, atomically; flags: TG_SAVE_WEIGHTS_ONLY, TG_SAVE_NO_OPTIMIZER */
    void save(const std::string &path, std::uint32_t flags = 0)
    {
        check(tg_model_save(handle(), path.c_str(), flags));
    }

    /* tg_model_info */
    std::int64_t info(tg_info key) const
    {
        std::int64_t v = 0;
        check(tg_model_info(handle(), key, &v));
        return v;
    }
    int image_size() const { return static_cast<int>(info(TG_INFO_IMAGE_SIZE)); }
    int channels() const { return static_cast<int>(info(TG_INFO_CHANNELS)); }
    std::size_t latent_dim() const { return static_cast<std::size_t>(info(TG_INFO_LATENT_DIM)); }
    /* floats in one image: channels * size * size */
    std::size_t image_floats() const
    {
        const std::size_t s = static_cast<std::size_t>(image_size());
        return static_cast<std::size_t>(channels()) * s * s;
    }
    /* class-conditional models: the number of classes (0: unconditional) */
    int num_classes() const { return static_cast<int>(info(TG_INFO_NUM_CLASSES)); }
    /* tg_model_class_name: the name of class k, "" when the model names none */
    std::string class_name(std::int64_t k) const
    {
        const char *s = tg_model_class_name(handle(), k);
        return s ? s : "";
    }
    /* the class whose name is `name`; throws transgan::error when there is none */
    std::int32_t class_index(const std::string &name) const
    {
        const int k = num_classes();
        for (int i = 0; i < k; i++)
            if (class_name(i) == name)
                return i;
        throw error(TG_ERR_INVALID_ARGUMENT,
                    "transgan::model: no class is named \"" + name + "\"");
    }
    /* the full descriptor JSON (defaults filled in) */
    std::string descriptor() const { return tg_model_descriptor(handle()); }
    /* tg_model_set_threads: n >= 1 fixes the thread count, 0 = the caller's */
    void set_threads(int n) { check(tg_model_set_threads(handle(), n)); }
    /* tg_model_set_precision: TG_PRECISION_BF16 where the CPU has AVX512-BF16
     * (else the model stays f32, which precision() tells) */
    void set_precision(tg_precision p) { check(tg_model_set_precision(handle(), p)); }
    /* the inference precision in effect (TG_INFO_PRECISION) */
    tg_precision precision() const { return static_cast<tg_precision>(info(TG_INFO_PRECISION)); }

    /* n latent vectors [n, latent_dim] drawn from `seed` (tg_latent_sample) */
    std::vector<float> latent(std::uint64_t seed, std::size_t n) const
    {
        std::vector<float> z(n * latent_dim());
        check(tg_latent_sample(handle(), seed, n, z.data(), z.size()));
        return z;
    }

    /* tg_generate for every latent in z (its size a multiple of latent_dim):
     * images [n, C, S, S] as floats in [-1, 1] */
    std::vector<float> generate(view<const float> z, std::uint32_t flags = TG_GEN_EMA)
    {
        const std::size_t n = count(z.size(), latent_dim(), "z");
        std::vector<float> out(n * image_floats());
        check(tg_generate(handle(), z.data(), n, flags, out.data(), out.size()));
        return out;
    }
    /* the same into a caller's buffer, which must hold n * image_floats() */
    void generate_into(view<const float> z, float *out, std::size_t out_len,
                       std::uint32_t flags = TG_GEN_EMA)
    {
        const std::size_t n = count(z.size(), latent_dim(), "z");
        check(tg_generate(handle(), z.data(), n, flags, out, out_len));
    }

    /* tg_generate_pixels: 8-bit interleaved pixels [n, S, S, bytes per pixel] */
    std::vector<std::uint8_t> generate_pixels(view<const float> z, tg_pixel_format format,
                                              std::uint32_t flags = TG_GEN_EMA)
    {
        const std::size_t n = count(z.size(), latent_dim(), "z");
        const std::size_t s = static_cast<std::size_t>(image_size());
        std::vector<std::uint8_t> out(n * s * s * static_cast<std::size_t>(format));
        check(tg_generate_pixels(handle(), z.data(), n, flags, format, out.data(), out.size()));
        return out;
    }

    /* tg_generate_labels: image i of class labels[i] (one label per latent) */
    std::vector<float> generate_labels(view<const float> z, view<const std::int32_t> labels,
                                       std::uint32_t flags = TG_GEN_EMA)
    {
        const std::size_t n = count(z.size(), latent_dim(), "z");
        same_count(labels.size(), n);
        std::vector<float> out(n * image_floats());
        check(tg_generate_labels(handle(), z.data(), labels.data(), n, flags, out.data(),
                                 out.size()));
        return out;
    }
    /* tg_generate_pixels_labels */
    std::vector<std::uint8_t> generate_pixels_labels(view<const float> z,
                                                     view<const std::int32_t> labels,
                                                     tg_pixel_format format,
                                                     std::uint32_t flags = TG_GEN_EMA)
    {
        const std::size_t n = count(z.size(), latent_dim(), "z");
        same_count(labels.size(), n);
        const std::size_t s = static_cast<std::size_t>(image_size());
        std::vector<std::uint8_t> out(n * s * s * static_cast<std::size_t>(format));
        check(tg_generate_pixels_labels(handle(), z.data(), labels.data(), n, flags, format,
                                        out.data(), out.size()));
        return out;
    }

    /* tg_discriminate: one raw score per image of `images` [n, C, S, S] */
    std::vector<float> discriminate(view<const float> images)
    {
        const std::size_t n = count(images.size(), image_floats(), "images");
        std::vector<float> scores(n);
        check(tg_discriminate(handle(), images.data(), n, scores.data(), scores.size()));
        return scores;
    }

    /* tg_train_step on a real batch [d_batch, C, S, S]; the step's noise comes
     * from the model's RNG. Returns the step's statistics. */
    tg_train_stats train_step(view<const float> real)
    {
        const std::size_t n = count(real.size(), image_floats(), "real");
        tg_train_stats stats{};
        stats.struct_size = sizeof stats;
        check(tg_train_step(handle(), real.data(), n, nullptr, nullptr, nullptr, &stats));
        return stats;
    }

    /* tg_discriminate_labels: scores with each image's class (projection term) */
    std::vector<float> discriminate_labels(view<const float> images,
                                           view<const std::int32_t> labels)
    {
        const std::size_t n = count(images.size(), image_floats(), "images");
        same_count(labels.size(), n);
        std::vector<float> scores(n);
        check(tg_discriminate_labels(handle(), images.data(), labels.data(), n, scores.data(),
                                     scores.size()));
        return scores;
    }

    /* tg_train_step_labels on a real batch and its classes [d_batch]; the
     * fakes' classes and the noise come from the model's RNG */
    tg_train_stats train_step_labels(view<const float> real, view<const std::int32_t> labels)
    {
        const std::size_t n = count(real.size(), image_floats(), "real");
        same_count(labels.size(), n);
        tg_train_labels tl{};
        tl.struct_size = sizeof tl;
        tl.real = labels.data();
        tg_train_stats stats{};
        stats.struct_size = sizeof stats;
        check(tg_train_step_labels(handle(), real.data(), n, &tl, nullptr, nullptr, nullptr,
                                   &stats));
        return stats;
    }

    /* the raw handle, for C calls this header does not wrap (stays owned) */
    tg_model *get() const noexcept { return m_.get(); }
    /* give up ownership: the caller destroys the returned handle */
    tg_model *release() noexcept { return m_.release(); }
    explicit operator bool() const noexcept { return static_cast<bool>(m_); }

private:
    struct deleter {
        void operator()(tg_model *m) const noexcept { tg_model_destroy(m); }
    };
    std::unique_ptr<tg_model, deleter> m_;

    tg_model *handle() const
    {
        if (!m_)
            throw error(TG_ERR_INVALID_ARGUMENT, "transgan::model: empty handle (moved from?)");
        return m_.get();
    }
    /* how many items of `unit` floats `len` holds; a remainder is an error */
    static std::size_t count(std::size_t len, std::size_t unit, const char *what)
    {
        if (unit == 0 || len % unit != 0)
            throw error(TG_ERR_INVALID_ARGUMENT, std::string("transgan::model: ") + what +
                                                     " holds " + std::to_string(len) +
                                                     " floats, not a multiple of " +
                                                     std::to_string(unit));
        return len / unit;
    }
    /* one label per image */
    static void same_count(std::size_t labels, std::size_t n)
    {
        if (labels != n)
            throw error(TG_ERR_INVALID_ARGUMENT, "transgan::model: " + std::to_string(labels) +
                                                     " labels for " + std::to_string(n) +
                                                     " images");
    }
};

} // namespace transgan

#endif /* TRANSGAN_HPP */
