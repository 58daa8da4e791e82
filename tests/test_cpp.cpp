// Tests of include/transgan.hpp, the header-only C++17 wrapper.
// Built with -std=c++17 -Wall -Wextra -Werror -pedantic by `make cpp-test`
// against the static library; prints "cpp: N passed, M failed".
#include <transgan.hpp>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <unistd.h>
#include <vector>

static int passed, failed;

#define EXPECT(cond)                                                                     \
    do {                                                                                 \
        if (cond) {                                                                      \
            passed++;                                                                    \
        } else {                                                                         \
            failed++;                                                                    \
            std::fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond);     \
        }                                                                                \
    } while (0)

// Runs f, which must throw transgan::error with `want`; returns the message.
template <typename F> static std::string expect_error(F f, tg_status want)
{
    try {
        f();
    } catch (const transgan::error &e) {
        EXPECT(e.status() == want);
        EXPECT(std::string(e.status_name()) == tg_status_string(want));
        EXPECT(std::string(e.what()).size() > 0);
        return e.what();
    } catch (...) {
        EXPECT(!"threw something other than transgan::error");
        return "";
    }
    EXPECT(!"did not throw");
    return "";
}

static std::string read_file(const char *path)
{
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

int main()
{
    const char *desc_path = "tests/data/tiny-train.json";
    const std::string json = read_file(desc_path);
    EXPECT(!json.empty());

    // create from text and from file give the same model for the same seed
    transgan::model a = transgan::model::create(json, 5);
    transgan::model b = transgan::model::create_from_file(desc_path, 5);
    EXPECT(a && b);
    EXPECT(a.image_size() == 32);
    EXPECT(a.channels() == 1);
    EXPECT(a.latent_dim() == 16);
    EXPECT(a.image_floats() == 32u * 32u);
    EXPECT(a.descriptor().find("\"tiny-train\"") != std::string::npos);

    // latents: the same seed gives the same numbers; sizes follow n
    std::vector<float> z = a.latent(3, 2);
    EXPECT(z.size() == 2 * 16);
    EXPECT(z == b.latent(3, 2));

    // generate: every view kind gives the same images as the C API
    std::vector<float> img = a.generate(z);
    EXPECT(img.size() == 2u * 32u * 32u);
    std::vector<float> ref(img.size());
    EXPECT(tg_generate(a.get(), z.data(), 2, TG_GEN_EMA, ref.data(), ref.size()) == TG_OK);
    EXPECT(img == ref);
    EXPECT(b.generate(z) == img);
    std::array<float, 16> z1{};
    for (std::size_t i = 0; i < z1.size(); i++)
        z1[i] = z[i];
    float zc[16];
    for (std::size_t i = 0; i < 16; i++)
        zc[i] = z[i];
    std::vector<float> first(img.begin(), img.begin() + 32 * 32);
    EXPECT(a.generate(z1) == first);
    EXPECT(a.generate(zc) == first);
    EXPECT(a.generate(transgan::view<const float>(z.data(), 16)) == first);
    std::vector<float> into(32 * 32);
    a.generate_into(z1, into.data(), into.size());
    EXPECT(into == first);

    // pixels: sizes per format, and the same bytes as the C conversion
    std::vector<uint8_t> rgba = a.generate_pixels(z, TG_PIXEL_RGBA8);
    EXPECT(rgba.size() == 2u * 32u * 32u * 4u);
    std::vector<uint8_t> rgba_c(rgba.size());
    EXPECT(tg_images_to_pixels(img.data(), 2, 1, 32, TG_PIXEL_RGBA8, rgba_c.data(),
                               rgba_c.size()) == TG_OK);
    EXPECT(rgba == rgba_c);
    EXPECT(a.generate_pixels(z, TG_PIXEL_GRAY8).size() == 2u * 32u * 32u);

    // discriminate: one finite score per image
    std::vector<float> scores = a.discriminate(img);
    EXPECT(scores.size() == 2);
    EXPECT(std::isfinite(scores[0]) && std::isfinite(scores[1]));

    // training: a step with the descriptor's d_batch, counters move
    std::vector<float> real(4u * 32u * 32u);
    for (std::size_t i = 0; i < real.size(); i++)
        real[i] = std::sin(0.37f * static_cast<float>(i));
    tg_train_stats st = a.train_step(real);
    EXPECT(st.d_steps == 1 && st.g_steps == 1 && st.g_updated == 1);
    EXPECT(std::isfinite(st.d_loss));
    EXPECT(a.info(TG_INFO_D_STEPS) == 1);

    // save, load, load_weights round trip
    char dir[] = "/tmp/tg-cpp-XXXXXX";
    EXPECT(mkdtemp(dir) != nullptr);
    const std::string ck = std::string(dir) + "/m.safetensors";
    a.save(ck);
    transgan::model c = transgan::model::load(ck);
    EXPECT(c.info(TG_INFO_D_STEPS) == 1);
    EXPECT(c.generate(z, TG_GEN_RAW) == a.generate(z, TG_GEN_RAW));
    b.load_weights(ck);
    EXPECT(b.generate(z, TG_GEN_RAW) == a.generate(z, TG_GEN_RAW));

    // load from memory and for sampling only: the same images
    std::string msg;
    std::ifstream in(ck, std::ios::binary);
    std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                    std::istreambuf_iterator<char>());
    EXPECT(bytes.size() > 8);
    transgan::model mem = transgan::model::load_memory(bytes);
    EXPECT(mem.generate(z, TG_GEN_RAW) == a.generate(z, TG_GEN_RAW));
    EXPECT(mem.info(TG_INFO_SAMPLING_ONLY) == 0);
    transgan::model so = transgan::model::load(ck, TG_LOAD_SAMPLING_ONLY);
    EXPECT(so.info(TG_INFO_SAMPLING_ONLY) == 1);
    EXPECT(so.generate(z) == a.generate(z));
    transgan::model so2 =
        transgan::model::load_memory(bytes.data(), bytes.size(), TG_LOAD_SAMPLING_ONLY);
    EXPECT(so2.generate(z) == a.generate(z));
    msg = expect_error([&] { so.discriminate(img); }, TG_ERR_STATE);
    EXPECT(msg.find("sampling only") != std::string::npos);
    expect_error([&] { so.generate(z, TG_GEN_RAW); }, TG_ERR_STATE);
    expect_error([&] { so.save(ck + ".so"); }, TG_ERR_STATE);
    expect_error([&] { transgan::model::load_memory(bytes.data(), bytes.size() / 2); },
                 TG_ERR_FORMAT);
    expect_error([&] { transgan::model::load(ck, 0x100); }, TG_ERR_INVALID_ARGUMENT);
    a.set_threads(1);
    EXPECT(a.info(TG_INFO_THREADS) == 1);
    // bf16 inference: bf16 or the f32 fallback, and back to f32 exactly
    EXPECT(a.precision() == TG_PRECISION_F32);
    const std::vector<float> f32_images = a.generate(z);
    a.set_precision(TG_PRECISION_BF16);
    EXPECT(a.precision() == TG_PRECISION_BF16 || a.precision() == TG_PRECISION_F32);
    EXPECT(a.generate(z).size() == f32_images.size());
    a.set_precision(TG_PRECISION_F32);
    EXPECT(a.precision() == TG_PRECISION_F32);
    EXPECT(a.generate(z) == f32_images);
    expect_error([&] { a.set_precision(static_cast<tg_precision>(7)); }, TG_ERR_INVALID_ARGUMENT);

    // errors carry the status and the library's message
    expect_error([] { transgan::model::load("/nonexistent/x.safetensors"); }, TG_ERR_IO);
    msg = expect_error([] { transgan::model::create("{", 1); }, TG_ERR_DESCRIPTOR);
    EXPECT(msg.find("1:") != std::string::npos || msg.size() > 5);
    expect_error([&] { a.set_threads(-1); }, TG_ERR_INVALID_ARGUMENT);
    // sizes are checked before the C call: 15 floats is not a whole latent
    expect_error([&] { a.generate(transgan::view<const float>(z.data(), 15)); },
                 TG_ERR_INVALID_ARGUMENT);
    expect_error([&] { a.train_step(transgan::view<const float>(real.data(), 3 * 32 * 32)); },
                 TG_ERR_INVALID_ARGUMENT);
    std::vector<float> bad = z;
    bad[0] = NAN;
    expect_error([&] { a.generate(bad); }, TG_ERR_NONFINITE);
    expect_error([&] { into.resize(10); a.generate_into(z1, into.data(), into.size()); },
                 TG_ERR_INVALID_ARGUMENT);

    // ownership: moves leave an empty handle that throws; release hands it over
    transgan::model moved = std::move(c);
    EXPECT(!c && moved);
    expect_error([&] { (void)c.image_size(); }, TG_ERR_INVALID_ARGUMENT);
    tg_model *raw = moved.release();
    EXPECT(raw != nullptr && !moved);
    transgan::model adopted(raw);
    EXPECT(adopted.image_size() == 32);

    std::remove(ck.c_str());
    rmdir(dir);
    // class-conditional models (tests/fixtures/cond-ln: 3 named classes)
    {
        transgan::model c = transgan::model::load("tests/fixtures/cond-ln.safetensors");
        EXPECT(c.num_classes() == 3);
        EXPECT(c.class_name(1) == "bag" && c.class_name(3).empty());
        EXPECT(c.class_index("shirt") == 2);
        expect_error([&] { c.class_index("sock"); }, TG_ERR_INVALID_ARGUMENT);
        const std::vector<float> z = c.latent(3, 2);
        const std::vector<std::int32_t> y = {c.class_index("boot"), 2};
        const std::vector<float> img = c.generate_labels(z, y);
        EXPECT(img.size() == 2 * c.image_floats());
        // one image at a time, the same classes: the same images
        const std::vector<float> one = c.generate_labels(
            transgan::view<const float>(z.data() + c.latent_dim(), c.latent_dim()),
            transgan::view<const std::int32_t>(y.data() + 1, 1));
        double e = 0;
        for (std::size_t i = 0; i < one.size(); i++)
            e = std::fmax(e, std::fabs(one[i] - img[c.image_floats() + i]));
        EXPECT(e < 1e-5);
        EXPECT(c.generate_pixels_labels(z, y, TG_PIXEL_RGB8).size() == 2 * 8 * 8 * 3);
        EXPECT(c.discriminate_labels(img, y).size() == 2);
        std::string msg = expect_error([&] { c.generate_labels(z, std::vector<std::int32_t>{0}); },
                                       TG_ERR_INVALID_ARGUMENT);
        EXPECT(msg.find("1 labels for 2 images") != std::string::npos);
        msg = expect_error([&] { c.generate_labels(z, std::vector<std::int32_t>{0, 3}); },
                           TG_ERR_INVALID_ARGUMENT);
        EXPECT(msg.find("out of range") != std::string::npos);
        // a plain training step on a conditional model says what to call
        std::vector<float> real(static_cast<std::size_t>(c.info(TG_INFO_D_BATCH)) *
                                    c.image_floats(), 0.25f);
        msg = expect_error([&] { c.train_step(real); }, TG_ERR_INVALID_ARGUMENT);
        EXPECT(msg.find("tg_train_step_labels") != std::string::npos);
        std::vector<std::int32_t> yr(real.size() / c.image_floats());
        for (std::size_t i = 0; i < yr.size(); i++)
            yr[i] = static_cast<std::int32_t>(i % 3);
        const tg_train_stats st = c.train_step_labels(real, yr);
        EXPECT(st.d_steps == 1 && std::isfinite(st.d_loss));
        EXPECT(a.num_classes() == 0 && a.class_name(0).empty());
    }

    std::printf("cpp: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
