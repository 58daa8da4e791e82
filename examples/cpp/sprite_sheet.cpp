// A C++ program that embeds libtransgan through include/transgan.hpp: load a
// model (checkpoint or descriptor), draw a sheet of sprites and write it as a
// binary PGM/PAM image, with errors reported by exceptions.
//
//   sprite_sheet MODEL [COUNT] [SEED] [OUT.pam]
//
// Build (installed library): c++ -std=c++17 sprite_sheet.cpp $(pkg-config --cflags --libs transgan)
#include <transgan.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

int main(int argc, char **argv)
{
    if (argc < 2) {
        std::cerr << "usage: sprite_sheet MODEL.safetensors|DESCRIPTOR.json [COUNT] [SEED] [OUT.pam]\n";
        return 2;
    }
    const std::string path = argv[1];
    const std::size_t count = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 8;
    const std::uint64_t seed = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 1;
    const std::string out = argc > 4 ? argv[4] : "sprites.pam";
    if (count == 0 || count > 1024) {
        std::cerr << "sprite_sheet: COUNT must be 1..1024\n";
        return 2;
    }
    try {
        const bool json = path.size() > 5 && path.compare(path.size() - 5, 5, ".json") == 0;
        transgan::model m = json ? transgan::model::create_from_file(path)
                                 : transgan::model::load(path);
        const std::size_t s = static_cast<std::size_t>(m.image_size());
        std::vector<std::uint8_t> px = m.generate_pixels(m.latent(seed, count), TG_PIXEL_RGBA8);

        // one row of `count` sprites, RGBA, as a PAM file (netpbm; GIMP, ImageMagick read it)
        std::ofstream f(out, std::ios::binary);
        f << "P7\nWIDTH " << s * count << "\nHEIGHT " << s
          << "\nDEPTH 4\nMAXVAL 255\nTUPLTYPE RGB_ALPHA\nENDHDR\n";
        for (std::size_t y = 0; y < s; y++)
            for (std::size_t i = 0; i < count; i++)
                f.write(reinterpret_cast<const char *>(px.data() + ((i * s + y) * s) * 4),
                        static_cast<std::streamsize>(s * 4));
        if (!f) {
            std::cerr << "sprite_sheet: cannot write " << out << "\n";
            return 1;
        }
        std::cout << "sprite_sheet: " << count << " sprites of " << s << "x" << s << " from "
                  << path << " -> " << out << "\n";
    } catch (const transgan::error &e) {
        std::cerr << "sprite_sheet: " << e.status_name() << ": " << e.what() << "\n";
        return 1;
    }
    return 0;
}
