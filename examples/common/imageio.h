/* imageio.h - image input/output shared by the examples (not part of libtransgan).
 *
 * Images are float32 NCHW with values in [-1, 1], the library's convention:
 * an 8-bit value v becomes v / 127.5 - 1.
 *
 *   - Fashion-MNIST (or any MNIST-style idx3 file, gzip'd or not): 28 x 28 grey,
 *     padded with zeros (black, -1.0) to the model's size;
 *   - a folder of PNG files (e.g. emoji sprites), resized by area averaging
 *     (exact box averaging when the size is an integer multiple) and converted
 *     to the model's channels;
 *   - a grid of 8-bit images as one PNG, one image upscaled by nearest neighbour
 *     as a PNG, a float32 .npy (numpy format 1.0).
 *
 * Every function returns 0 on success and -1 on failure, with a message in
 * io_last_error().
 */
#ifndef EXAMPLES_IMAGEIO_H
#define EXAMPLES_IMAGEIO_H

#include <stddef.h>
#include <stdint.h>

/* The Debian package dataset-fashion-mnist installs the files here; a
 * failure to open one of them names the package. */
#define IO_FMNIST_PACKAGE "dataset-fashion-mnist"
#define IO_FMNIST_DIR "/usr/share/datasets/fashion-mnist/"
#define IO_FMNIST_TRAIN IO_FMNIST_DIR "train-images-idx3-ubyte.gz"
#define IO_FMNIST_TRAIN_LABELS IO_FMNIST_DIR "train-labels-idx1-ubyte.gz"
/* Fashion-MNIST's ten classes, in label order (models/fmnist-cond.json) */
#define IO_FMNIST_CLASSES                                                                   \
    {"t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", \
     "ankle-boot"}

/* The message of the last failure ("" if none); static storage. */
const char *io_last_error(void);

/* Load the images of an idx3 file (gzip'd or plain) into *out, a malloc'd
 * float array [*n, channels, size, size]. The 28 x 28 images are centred in a
 * size x size frame of zeros (size >= the file's image size); grey is copied to
 * R, G, B, and alpha (channels 4) is opaque. limit > 0 keeps the first `limit`
 * images. Says on stderr when the images are padded. */
int io_load_idx(const char *path, int size, int channels, size_t limit, float **out, size_t *n);

/* Load the *.png files of a folder, in name order, into *out [*n, channels,
 * size, size]. Each image is resized to size x size by area averaging in
 * premultiplied alpha (so transparent pixels do not bleed into the colour);
 * channels 4 keeps straight alpha (colour 0 where fully transparent), channels
 * 3 and 1 composite over black (1: BT.601 luma). Files that cannot be decoded
 * are skipped with the reason on stderr; how many images were resized (and
 * drawn over black) is said there too. limit > 0 keeps the first `limit`. */
int io_load_png_dir(const char *dir, int size, int channels, size_t limit, float **out,
                    size_t *n);

/* Load the labels of an idx1 file of unsigned bytes (gzip'd or plain), such as
 * Fashion-MNIST's train-labels-idx1-ubyte.gz, into *out, a malloc'd int32
 * array [*n]. limit > 0 keeps the first `limit`. */
int io_load_idx_labels(const char *path, size_t limit, int32_t **out, size_t *n);

/* Load a folder whose sub-folders are classes: every sub-folder (in name order)
 * is loaded as by io_load_png_dir (limit > 0: the first `limit` images of each)
 * and its images get the sub-folder's index as their label. *out [*n, channels,
 * size, size], *labels [*n] and *names [*n_classes] (the sub-folder names) are
 * malloc'd; free them with io_free_names for the names. */
int io_load_png_classes(const char *dir, int size, int channels, size_t limit, float **out,
                        int32_t **labels, size_t *n, char ***names, int *n_classes);
void io_free_names(char **names, int n);

/* Write n images of 8-bit interleaved pixels [n, size, size, bpp] (bpp 1, 3 or
 * 4, as tg_images_to_pixels makes them) as one PNG: a grid of `cols` columns
 * (0: ceil(sqrt(n))) with a 1-pixel grey gap between tiles. Written to a
 * temporary file and renamed over `path`. */
int io_write_png_grid(const char *path, const uint8_t *pixels, size_t n, int size, int bpp,
                      int cols);

/* Write one image of 8-bit interleaved pixels [size, size, bpp] (bpp 1, 3 or 4)
 * as a PNG of (size * scale)^2 pixels: each pixel becomes a scale x scale block
 * (nearest neighbour, so sprites stay crisp). Written to a temporary file and
 * renamed over `path`. */
int io_write_png_scaled(const char *path, const uint8_t *pixels, int size, int bpp, int scale);

/* Write float32 images [n, channels, size, size] as a .npy file (format 1.0,
 * little-endian '<f4', C order), via a temporary file renamed over `path`. */
int io_write_npy(const char *path, const float *images, size_t n, int channels, int size);

#endif
