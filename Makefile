# libtransgan - TransGAN in C on oneDNN.
#   make            build build/libtransgan.so.X.Y.Z, the .so links and libtransgan.a
#   make test       everything that tests the project (installs missing packages)
#   make demo       sample and train a small model, writing PNGs
#   make install    PREFIX=/usr/local LIBDIR=$(PREFIX)/lib DESTDIR=
#   make bench      performance against PyTorch (the project's oracle) and ONNX Runtime
#   make bench-ort  performance against ONNX Runtime (npm's onnxruntime-node)
#   make bench-bf16 bf16 against f32 inference; make bench-bf16-fid: their FIDs
#   make bench-bf16-train  bf16 against f32 training (calls/s, interleaved)

PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
DOCDIR  ?= $(PREFIX)/share/doc/libtransgan
PKGDIR  ?= $(LIBDIR)/pkgconfig
DESTDIR ?=

HDR := include/transgan.h
VMAJ := $(shell sed -n 's/^\#define TG_VERSION_MAJOR \([0-9]*\).*/\1/p' $(HDR))
VMIN := $(shell sed -n 's/^\#define TG_VERSION_MINOR \([0-9]*\).*/\1/p' $(HDR))
VPAT := $(shell sed -n 's/^\#define TG_VERSION_PATCH \([0-9]*\).*/\1/p' $(HDR))
VERSION := $(VMAJ).$(VMIN).$(VPAT)
SONAME := libtransgan.so.$(VMAJ)

CC      ?= cc
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
WARN    := -std=c11 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L
LIBFLAGS := $(WARN) -fPIC -fvisibility=hidden -fopenmp -Iinclude
LDLIBS  := -ldnnl -lcjson -lm -lpthread
B       ?= build

SRCS := $(sort $(wildcard lib/*/*.c))
OBJS := $(SRCS:lib/%.c=$(B)/obj/%.o)
HDRS := $(HDR) $(wildcard lib/*/*.h lib/*/*.inc)

SHLIB := $(B)/libtransgan.so.$(VERSION)
STLIB := $(B)/libtransgan.a

.PHONY: all deps test-deps test unit-test asan-test abi-test ref-test example-test examples demo install uninstall clean bench layers-test
all: $(SHLIB) $(STLIB)

deps:
	@scripts/install-deps.sh build
test-deps:
	@scripts/install-deps.sh test

$(B)/obj/%.o: lib/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LIBFLAGS) -c $< -o $@

# The fused attention's loops need the vectoriser at full strength.
# -O3 and FMA contraction (ISO C mode turns it off): the kernels are FMA chains
$(B)/obj/ops/attention_fused.o: OPT += -O3 -ffp-contract=fast

$(SHLIB): $(OBJS) lib/libtransgan.map
	$(CC) $(CFLAGS) -shared -fopenmp -Wl,-soname,$(SONAME) -Wl,--version-script=lib/libtransgan.map \
	    -Wl,--no-undefined -o $@ $(OBJS) $(LDLIBS)
	ln -sf libtransgan.so.$(VERSION) $(B)/$(SONAME)
	ln -sf $(SONAME) $(B)/libtransgan.so

$(STLIB): $(OBJS)
	rm -f $@
	ar rcs $@ $(OBJS)

# ---------------------------------------------------------------- tests
TEST_SRCS := $(sort $(wildcard tests/test_*.c))
TEST_HELP := tests/testutil.c
TEST_BINS := $(TEST_SRCS:tests/%.c=$(B)/tests/%)
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt)

$(B)/tests/%: tests/%.c $(TEST_HELP) tests/testutil.h $(STLIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -fopenmp -Iinclude -Ilib -Itests -o $@ $< $(TEST_HELP) $(STLIB) \
	    $(CHECK_LIBS) $(LDLIBS)

# Unit tests (Check). Each binary prints its Check summary.
unit-test: $(TEST_BINS)
	@set -e; for t in $(TEST_BINS); do echo "== $$t $(ISA_ENV)"; $(ISA_ENV) OMP_NUM_THREADS=2 $$t; done

# The same tests under AddressSanitizer and UndefinedBehaviorSanitizer.
asan-test:
	$(MAKE) B=build-asan OPT="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" unit-test \
	    LDLIBS="-fsanitize=address,undefined $(LDLIBS)"

# Every x86-64: the C suites again with oneDNN capped at AVX2 and at its
# baseline (SSE4.1), and our own kernels built for that ISA only (normally
# they pick AVX-512 on a CPU that has it). No oneDNN reference kernel may run.
.PHONY: isa-test
isa-test:
	$(MAKE) B=build-avx2 OPT="-O2 -DTG_KERNEL_ISA_AVX2" unit-test ISA_ENV="ONEDNN_MAX_CPU_ISA=AVX2"
	$(MAKE) B=build-sse41 OPT="-O2 -DTG_KERNEL_ISA_BASELINE" unit-test ISA_ENV="ONEDNN_MAX_CPU_ISA=SSE41"

# The committed fixtures are still what the project's PyTorch oracle computes
# (tests/reference/oracle.py; torch and numpy of /usr/bin/python3). A missing
# torch fails the target: the tests refuse to skip.
PYTEST := /usr/bin/python3 -m pytest -p no:cacheprovider -q
ref-test:
	$(PYTEST) tests/test_oracle.py tests/test_reference_io.py tests/test_train_reference.py

# The Python bindings (bindings/python), against build/libtransgan.so.0.
.PHONY: py-test
py-test: all
	/usr/bin/python3 -m pytest -p no:cacheprovider bindings/python/tests

# The Fashion-MNIST FID evaluator of bench/fid (its committed classifier, FID, inputs).
.PHONY: fid-test
fid-test:
	$(PYTEST) tests/test_fid.py

# FID against wall-clock training time (bench/quality/quality.py; docs/QUALITY.md):
# trains QUALITY_DESC for QUALITY_MINUTES, a checkpoint every QUALITY_EVERY
# minutes, scores each with bench/fid, writes bench/results/quality-NAME/.
QUALITY_DESC ?= models/fmnist-mid.json
QUALITY_MINUTES ?= 15
QUALITY_EVERY ?= 3
QUALITY_ARGS ?=
.PHONY: quality quality-test
quality: all examples
	/usr/bin/python3 bench/quality/quality.py run $(QUALITY_DESC) --minutes $(QUALITY_MINUTES) \
	    --every $(QUALITY_EVERY) --build $(B) $(QUALITY_ARGS)
# its smoke test: a 20-second run of a tiny model, outputs present, FID finite
quality-test: all examples
	QUALITY_BUILD=$(B) $(PYTEST) tests/test_quality.py
# bf16 inference against f32 by FID of 10,000 samples of the shipped model
# (within 3%). Not in `make test`: 20,000 samples and their features take
# ~2.5 CPU-minutes; tests/test_bf16.c checks the pixel bound there.
.PHONY: bench-bf16-fid
bench-bf16-fid: all
	TG_DYNAMIC_THREADS=0 $(PYTEST) -s tests/test_bf16_fid.py

abi-test: all
	@sh tests/abi.sh $(B) $(VERSION) $(SONAME)

# The documentation against the header, the library and the bindings: every
# public name has its entry in docs/API.md, the documented examples compile
# and run (tests/check_api_docs.py says exactly what is checked).
.PHONY: docs-test
docs-test: all
	/usr/bin/python3 tests/check_api_docs.py $(B)
# include/transgan.hpp (C++17, header-only): its test and the C++ example, built
# with -pedantic and warnings as errors, against the static library.
CXX ?= c++
CXXWARN := -std=c++17 -Wall -Wextra -Werror -pedantic
.PHONY: cpp-test
$(B)/tests/test_cpp: tests/test_cpp.cpp include/transgan.hpp $(HDR) $(STLIB)
	@mkdir -p $(dir $@)
	$(CXX) $(CFLAGS) $(CXXWARN) -Iinclude -o $@ $< $(STLIB) -fopenmp $(LDLIBS)
$(B)/examples/sprite_sheet: examples/cpp/sprite_sheet.cpp include/transgan.hpp $(HDR) $(STLIB)
	@mkdir -p $(dir $@)
	$(CXX) $(CFLAGS) $(CXXWARN) -Iinclude -o $@ $< $(STLIB) -fopenmp $(LDLIBS)
cpp-test: $(B)/tests/test_cpp $(B)/examples/sprite_sheet
	OMP_NUM_THREADS=2 $(B)/tests/test_cpp
	@T=$$(mktemp -d); trap 'rm -rf "$$T"' EXIT; \
	$(B)/examples/sprite_sheet models/pretrained/fmnist-mid.safetensors 4 1 $$T/s.pam && \
	test $$(wc -c < $$T/s.pam) -gt $$((128 * 32 * 4))
# The bindings pip-installed (offline) into a fresh venv, imported from outside
# the repository with the library of a DESTDIR install found by the dynamic loader.
.PHONY: py-install-test
py-install-test: all
	@sh tests/py-install.sh $(B)
# No #include goes up the library's layers (api -> train, io -> models -> nn
# -> ops -> core), and TG_API functions live in lib/api/ only.
layers-test:
	@sh tests/layers.sh

# The suites compare results bit for bit between calls and between runs, and
# the float rounding of some shapes depends on the thread count: they pin the
# default count (TG_DYNAMIC_THREADS=0, docs/API.md "Threads"); the dynamic
# default has its own test (tests/test_threads.c), which turns it back on.
TEST_TARGETS := test unit-test asan-test isa-test abi-test cpp-test ref-test py-test docs-test fid-test \
	py-install-test example-test fuzz-test mpi-test
$(TEST_TARGETS): export TG_DYNAMIC_THREADS = 0
# ---------------------------------------------------------------- fuzzing
# libFuzzer targets (tests/fuzz/fuzz_*.c) with ASan and UBSan, built by clang
# against the library compiled with the same instrumentation in build-fuzz/.
# Each starts from its committed seed corpus (tests/fuzz/corpus/NAME) and
# dictionary (tests/fuzz/NAME.dict); new inputs go to a scratch folder, so a
# run never changes the repository. `make fuzz` runs each FUZZ_TIME seconds,
# `make fuzz-test` (in make test) FUZZ_SHORT seconds; a crash, a leak or a
# broken property fails the target and leaves the input in build-fuzz/.
FB := build-fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_TARGETS := descriptor checkpoint
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FB)/fuzz/fuzz_%)
FUZZ_TIME ?= 300
FUZZ_SHORT ?= 25
FUZZ_OPTS := -rss_limit_mb=4096 -malloc_limit_mb=1024 -timeout=20 -print_final_stats=1
.PHONY: fuzz fuzz-test fuzz-build fuzz-seeds
# The fused attention kernels use gcc's function multiversioning: gcc builds
# them, uninstrumented (they parse nothing); clang cannot vectorise every
# `omp simd` loop of the others and says so (-Wno-pass-failed).
$(FB)/obj/ops/attention_fused.o: override CC = gcc
$(FB)/obj/ops/attention_fused.o: override OPT = -O3 -ffp-contract=fast
ifneq ($(B),$(FB))
$(FB)/libtransgan.a: $(SRCS) $(HDRS)
	$(MAKE) B=$(FB) CC=clang OPT="-O1 -g -Wno-pass-failed -fsanitize=fuzzer-no-link $(FUZZ_SAN)" $(FB)/libtransgan.a
endif
$(FB)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/seed_model.h $(FB)/libtransgan.a
	@mkdir -p $(dir $@)
	clang -O1 -g $(WARN) -D_GNU_SOURCE -fsanitize=fuzzer $(FUZZ_SAN) -fopenmp -Iinclude -Ilib \
	    -Itests/fuzz -o $@ $< $(FB)/libtransgan.a $(LDLIBS)
fuzz-build: test-deps
	$(MAKE) $(FUZZ_BINS)
# FUZZ_RUN(seconds): each target in turn; its statistics end the output
define FUZZ_RUN
	@set -e; for t in $(FUZZ_TARGETS); do \
	  W=$$(mktemp -d); trap 'rm -rf "$$W"' EXIT; echo "== fuzz_$$t, $(1) s"; \
	  (cd $(FB) && ASAN_OPTIONS=detect_leaks=1 OMP_NUM_THREADS=1 ./fuzz/fuzz_$$t $(FUZZ_OPTS) \
	    -max_total_time=$(1) -dict=$(CURDIR)/tests/fuzz/$$t.dict "$$W" $(CURDIR)/tests/fuzz/corpus/$$t \
	    > "$$W.log" 2>&1) || { tail -60 "$$W.log"; rm -f "$$W.log"; exit 1; }; \
	  grep -E "^(#[0-9]+ *DONE|stat::number_of_executed_units|stat::peak_rss_mb)" "$$W.log" || true; \
	  rm -rf "$$W" "$$W.log"; done
endef
fuzz-test: fuzz-build
	$(call FUZZ_RUN,$(FUZZ_SHORT))
fuzz: fuzz-build
	$(call FUZZ_RUN,$(FUZZ_TIME))
# Rewrite the checkpoint seeds (after a change of the format or the seed model).
fuzz-seeds: $(STLIB)
	@mkdir -p $(B)/fuzz
	$(CC) $(CFLAGS) $(WARN) -fopenmp -Iinclude -Itests/fuzz -o $(B)/fuzz/make_seeds tests/fuzz/make_seeds.c $(STLIB) $(LDLIBS)
	$(B)/fuzz/make_seeds tests/fuzz/corpus/checkpoint

test: test-deps all
	$(MAKE) layers-test
	$(MAKE) unit-test
	$(MAKE) isa-test
	$(MAKE) abi-test
	$(MAKE) cpp-test
	$(MAKE) ref-test
	$(MAKE) py-test
	$(MAKE) docs-test
	$(MAKE) fid-test
	$(MAKE) quality-test
	$(MAKE) py-install-test
	$(MAKE) example-test
	$(MAKE) mpi-test
	CK_FORK=no ASAN_OPTIONS=detect_leaks=1 $(MAKE) asan-test
	$(MAKE) fuzz-test

# ---------------------------------------------------------------- examples
# Each examples/*.c is a program; all link examples/common/*.c (image I/O with
# zlib and stb: zlib1g-dev, libstb-dev) and the shared library.
EXAMPLES := $(patsubst examples/%.c,$(B)/examples/%,$(filter-out examples/train_mpi.c,$(wildcard examples/*.c)))
EX_COMMON := $(patsubst examples/common/%.c,$(B)/examples/common/%.o,$(wildcard examples/common/*.c))
EX_HDRS := $(HDR) $(wildcard examples/common/*.h)
EX_FLAGS := $(WARN) -Iinclude -Iexamples/common
$(B)/examples/common/%.o: examples/common/%.c $(EX_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(EX_FLAGS) -c $< -o $@
$(B)/examples/%: examples/%.c $(EX_HDRS) $(EX_COMMON) $(SHLIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(EX_FLAGS) -o $@ $< $(EX_COMMON) -L$(B) -ltransgan -Wl,-rpath,'$$ORIGIN/..' -lz -lm
# examples/train_mpi.c, data-parallel training over MPI (docs/DISTRIBUTED.md):
# built by `make examples` when mpicc is found (libopenmpi-dev), or asked for
# with MPI=1; MPI=0 leaves it out.
MPICC ?= mpicc
MPI ?= $(if $(shell command -v $(MPICC) 2>/dev/null),1,0)
examples: $(EX_COMMON) $(EXAMPLES) $(if $(filter 1,$(MPI)),$(B)/examples/train_mpi)
$(B)/examples/train_mpi: examples/train_mpi.c $(EX_HDRS) $(EX_COMMON) $(SHLIB)
	@mkdir -p $(dir $@)
	$(MPICC) $(CFLAGS) $(EX_FLAGS) -o $@ $< $(EX_COMMON) -L$(B) -ltransgan -Wl,-rpath,'$$ORIGIN/..' -lz -lm
# 2 ranks against 1 (weights within 1e-5 relative after 10 steps), a run
# killed mid-way and resumed against an uninterrupted one (tests/mpi.sh).
# Open MPI comes with make test's dependencies; without mpicc this fails.
.PHONY: mpi-test
mpi-test: all
	$(MAKE) MPI=1 $(B)/examples/train_mpi
	sh tests/mpi.sh $(B)

# Each example runs on tiny settings so they cannot rot (the C programs and the
# Python scripts of bindings/python/examples, which need python3-pil). Every line
# of checks below counts once; a failing one shows its output and fails the target.
EXB := $(B)/examples
EX_TRAIN := $(EXB)/train --model tests/data/tiny-train.json --data fmnist --limit 200
EX_PY := /usr/bin/python3 bindings/python/examples
EX_NO_FMNIST := /usr/share/datasets/fashion-mnist/no-such-file.gz
example-test: examples
	@T=$$(mktemp -d); trap 'rm -rf "$$T"' EXIT; pass=0; fail=0; \
	t() { echo "  $$1"; if (eval "$$1") > "$$T/out" 2>&1; then pass=$$((pass + 1)); \
	      else fail=$$((fail + 1)); echo "  FAILED; its output:"; sed 's/^/    /' "$$T/out"; fi; }; \
	t '$(EXB)/embed models/fmnist-small.json 3'; \
	t '$(EXB)/embed tests/fixtures/tiny-ln.safetensors 3'; \
	t '$(EXB)/generate models/pretrained/fmnist-mid.safetensors --n 8 --png $$T/demo.png && test -s $$T/demo.png'; \
	t '$(EXB)/generate models/pretrained/fmnist-convd.safetensors --n 8 --seed 1 --png $$T/convd.png 2>&1 | grep -q "8 images 32x32x1 (EMA, d_steps 25157" && test -s $$T/convd.png'; \
	t '$(EXB)/generate models/pretrained/fmnist-cond.safetensors --class rows --seed 1 --png $$T/rows.png --npy $$T/rows.npy 2>&1 | grep -q "80 images" && test -s $$T/rows.png'; \
	t '$(EXB)/generate models/pretrained/emoji-32.safetensors --n 8 --seed 1 --png $$T/emoji.png 2>&1 | grep -q "8 images 32x32x4" && test -s $$T/emoji.png'; \
	t '$(EX_TRAIN) --steps 3 --every 2 --out $$T/run && test -s $$T/run/checkpoint.safetensors && test -s $$T/run/samples_2.png && test -s $$T/run/samples_3.png && test $$(wc -l < $$T/run/log.tsv) -eq 3'; \
	t '$(EXB)/train --resume $$T/run/checkpoint.safetensors --limit 200 --steps 2 --every 2 > $$T/resume.txt && grep -q "at d_steps 3 g_steps 2" $$T/resume.txt && test -s $$T/run/samples_4.png && test -s $$T/run/samples_5.png && test $$(wc -l < $$T/run/log.tsv) -eq 5'; \
	t '$(EX_TRAIN) --steps 5 --every 0 --out $$T/straight && cmp $$T/straight/checkpoint.safetensors $$T/run/checkpoint.safetensors'; \
	t '$(EXB)/generate $$T/run/checkpoint.safetensors --n 5 --npy $$T/g.npy --png $$T/g.png && test -s $$T/g.png && test $$(wc -c < $$T/g.npy) -eq 20608'; \
	t 'mkdir $$T/pngs && $(EXB)/generate $$T/run/checkpoint.safetensors --n 1 --png $$T/pngs/a.png && $(EXB)/generate $$T/run/checkpoint.safetensors --n 1 --seed 2 --raw --png $$T/pngs/b.png'; \
	t '$(EXB)/train --model tests/data/tiny-train.json --data $$T/pngs --steps 2 --every 0 --out $$T/png-run > $$T/png.txt && grep -q "^train: 2 images from" $$T/png.txt && test -s $$T/png-run/samples_2.png'; \
	t '$(EX_TRAIN) --minutes 0.25 --every 0 --out $$T/est > $$T/est.txt && grep -q "train: estimate: at [0-9]* real images/s, about [0-9]* min .*(~400k images seen by D" $$T/est.txt'; \
	t '$(EXB)/train --model tests/data/tiny-convd-train.json --data fmnist --limit 200 --minutes 0.25 --every 0 --out $$T/est-c > $$T/est-c.txt && grep -q "train: estimate: .*(~50k images seen by D" $$T/est-c.txt'; \
	t '$(EXB)/interpolate tests/fixtures/tiny-ln.safetensors --frames 5 --out $$T/walk && test "$$(cd $$T/walk && echo *)" = "frame_0000.png frame_0001.png frame_0002.png frame_0003.png frame_0004.png"'; \
	t '$(EX_PY)/train_folder.py --model tests/data/tiny-train.json --data fmnist --limit 64 --steps 3 --every 2 --out $$T/py-run && test -s $$T/py-run/checkpoint.safetensors && test -s $$T/py-run/samples_2.png && test -s $$T/py-run/samples_3.png'; \
	t '$(EX_PY)/sample_grid.py $$T/py-run/checkpoint.safetensors --n 10 --out $$T/py-grid.png && test -s $$T/py-grid.png'; \
	t '$(EX_PY)/train_folder.py --model tests/data/tiny-train.json --data $$T/pngs --steps 2 --every 0 --out $$T/py-png > $$T/py-png.txt && grep -q "^train_folder: 2 images from" $$T/py-png.txt && test -s $$T/py-png/samples_2.png'; \
	t '! $(EXB)/train --model tests/data/tiny-train.json --data $(EX_NO_FMNIST) --out $$T/x 2> $$T/nofm.txt && grep -q "Debian package dataset-fashion-mnist" $$T/nofm.txt'; \
	t '! $(EX_PY)/train_folder.py --model tests/data/tiny-train.json --data $(EX_NO_FMNIST) --out $$T/x 2> $$T/nofm.txt && grep -q "Debian package dataset-fashion-mnist" $$T/nofm.txt'; \
	t 'mkdir $$T/odd && cp $$T/pngs/a.png $$T/odd/a.png && echo text > $$T/odd/b.png && $(EX_PY)/sample_grid.py $$T/run/checkpoint.safetensors --n 1 --scale 2 --out $$T/odd/c.png && $(EXB)/train --model tests/data/tiny-train.json --data $$T/odd --steps 1 --every 0 --out $$T/odd-run 2> $$T/odd.txt && grep -q "b.png.: it is not a PNG image" $$T/odd.txt && grep -q "1 of 2 images are not 32x32 (.c.png. is 64x64); they were resized to 32x32" $$T/odd.txt'; \
	t '$(EXB)/train --model tests/data/tiny-cond.json --data fmnist --limit 200 --steps 3 --every 0 --out $$T/cond > $$T/cond.txt && grep -q "^train: classes from .*train-labels-idx1" $$T/cond.txt && test -s $$T/cond/samples_3.png'; \
	t '$(EXB)/generate $$T/cond/checkpoint.safetensors --class sneaker --n 4 --png $$T/sneaker.png && test -s $$T/sneaker.png && $(EXB)/generate $$T/cond/checkpoint.safetensors --class rows --npy $$T/rows.npy > $$T/rows.txt && grep -q "^generate: 80 images" $$T/rows.txt'; \
	t '! $(EXB)/generate $$T/cond/checkpoint.safetensors --class sock 2> $$T/sock.txt && grep -q "sock is not a class of .* 7=sneaker" $$T/sock.txt'; \
	t 'mkdir -p $$T/cls/bag $$T/cls/sneaker && cp $$T/pngs/a.png $$T/cls/bag/ && cp $$T/pngs/b.png $$T/cls/sneaker/ && cp $$T/pngs/a.png $$T/cls/sneaker/c.png && $(EXB)/train --model tests/data/tiny-cond.json --data $$T/cls --labels folders --steps 2 --every 0 --out $$T/cls-run > $$T/cls.txt && grep -q "^train: 2 classes from the sub-folders" $$T/cls.txt && grep -q "^train: 3 images from" $$T/cls.txt'; \
	t '! $(EX_TRAIN) --labels fmnist --out $$T/x 2> $$T/unc.txt && grep -q "the model is unconditional" $$T/unc.txt'; \
	t '$(EX_PY)/sample_grid.py $$T/cond/checkpoint.safetensors --n 4 --label bag --out $$T/py-bag.png && test -s $$T/py-bag.png'; \
	echo "examples: $$pass passed, $$fail failed"; test $$fail -eq 0

# ---------------------------------------------------------------- Blender
# The add-on zip (bindings/blender; the Python bindings and this build's library
# inside) and its test in a real headless Blender. Not part of `make test`
# (Blender is a large install): `make blender-test` installs Debian's blender
# when it is missing and runs the add-on in it.
.PHONY: blender-addon blender-test
blender-addon: $(SHLIB)
	/usr/bin/python3 scripts/build_blender_addon.py $(B)/transgan_blender.zip --lib $(SHLIB)
blender-test: blender-addon
	@scripts/install-deps.sh blender
	@T=$$(mktemp -d); trap 'rm -rf "$$T"' EXIT; \
	BLENDER_USER_SCRIPTS=$$T/scripts OMP_NUM_THREADS=2 blender -b --factory-startup \
	    --python-exit-code 1 --python bindings/blender/tests/blender_test.py -- \
	    $(B)/transgan_blender.zip models/pretrained/fmnist-mid.safetensors \
	    tests/fixtures/cond-ln.safetensors 2>&1 | \
	    tee $$T/log | grep -E "^(FAILED|blender:|Traceback)"; \
	grep -q "^blender: [0-9]* passed, 0 failed" $$T/log

# ---------------------------------------------------------------- bench
# make bench: the library against its two peers, on each descriptor.
# 1. PyTorch (the project's oracle): build/bench/bench measures the library
#    with 1 and 2 threads, bench/run.py beside bench/peer_bench.py (timing
#    tests/reference/oracle.py); writes bench/results/NAME.{json,md}.
# 2. ONNX Runtime: bench/ort/compare.py, the make bench-ort chain below
#    (generator b=1/16/64, discriminator b=64; library f32 and each further
#    precision of ORT_ARGS' --precisions that lib_bench knows, interleaved with
#    ORT's best configuration); prints the comparison last and writes
#    bench/results/ort-NAME.{json,md}.
# Slow (~30 min) and load-sensitive: run it on a quiet machine. Not part of
# make test. onnxruntime-node comes from npm as for bench-ort.
BENCH_DESCS ?= models/fmnist-small.json models/transgan-s.json
BENCH_ARGS ?=
$(B)/bench/bench: bench/bench.c bench/peak.c bench/bench.h bench/util.h $(HDR) $(SHLIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -O2 $(WARN) -fopenmp -Iinclude -o $@ bench/bench.c bench/peak.c \
	    -L$(B) -ltransgan -Wl,-rpath,'$$ORIGIN/..' -ldnnl -lcjson -lm

# make bench-latency: sprite latency and training speed beside 0-4 busy
# processes, default thread count against a fixed 2 (bench/latency.sh).
LATENCY_ARGS ?= 10 1
$(B)/bench/latency: bench/latency.c bench/util.h $(HDR) $(SHLIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -O2 $(WARN) -Iinclude -o $@ $< -L$(B) -ltransgan -Wl,-rpath,'$$ORIGIN/..' -lm
.PHONY: bench-latency
bench-latency: $(B)/bench/latency
	sh bench/latency.sh $(B) $(LATENCY_ARGS)
# make bench-load: peak memory of loading TransGAN-S (a fresh checkpoint of
# models/transgan-s.json: G, D and EMA) and sampling one image, with a full
# load, a sampling-only load and a sampling-only load from memory; each in
# its own process (docs/PERFORMANCE.md, "Memory of loading").
.PHONY: bench-load
$(B)/bench/load_peak: bench/load_peak.c $(HDR) $(SHLIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -Iinclude -o $@ $< -L$(B) -ltransgan -Wl,-rpath,'$$ORIGIN/..'
$(B)/bench/transgan-s.safetensors: models/transgan-s.json $(B)/bench/load_peak
	$(B)/bench/load_peak --make $< $@
bench-load: $(B)/bench/load_peak $(B)/bench/transgan-s.safetensors
	@for opt in "" "--sampling-only" "--sampling-only --memory"; do \
	  OMP_NUM_THREADS=1 $(B)/bench/load_peak $(B)/bench/transgan-s.safetensors $$opt || exit 1; done

# make bench-ort: the library against ONNX Runtime 1.30 (bench/ort/compare.py):
# each descriptor's networks exported to ONNX from tests/reference/oracle.py
# (bench/ort/export.py, which checks ORT's output against the library's), ORT's
# best session configuration found, then both engines timed in interleaved runs
# at 2 threads; writes bench/results/ort-NAME.{json,md}. onnxruntime-node comes
# from npm into build/ort (its install script only fetches GPU files, hence
# --ignore-scripts); python3-onnx (the exports' op counts) from Debian.
# make ort-test: the same chain on a tiny descriptor (no timing), < 20 s.
ORT_VERSION := 1.30.0
# bf16 against f32 inference (tg_model_set_precision), interleaved call by
# call in one process (bench/bf16_ab.c); on a CPU without AVX512-BF16 both
# columns are f32. docs/PERFORMANCE.md "bf16".
BF16_AB_ARGS ?= --seconds 3 --rounds 5
$(B)/bench/bf16_ab: bench/bf16_ab.c bench/util.h $(HDR) $(SHLIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -O2 $(WARN) -Iinclude -o $@ $< -L$(B) -ltransgan -Wl,-rpath,'$$ORIGIN/..' -lm
.PHONY: bench-bf16
bench-bf16: $(B)/bench/bf16_ab
	@uptime
	OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2 $(B)/bench/bf16_ab models/transgan-s.json --threads 2 $(BF16_AB_ARGS)
	OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2 $(B)/bench/bf16_ab models/fmnist-small.json --threads 2 $(BF16_AB_ARGS)
	@uptime
# bf16 against f32 training (training.precision), interleaved round by
# round in one process (bench/bf16_train.c; static library: it sets the
# internal penalty mask). docs/PERFORMANCE.md "bf16 training".
BF16_TRAIN_ARGS ?= --steps 3 --rounds 5 --penalty-masks 0,2,3
$(B)/bench/bf16_train: bench/bf16_train.c bench/util.h $(HDR) $(STLIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -O2 $(WARN) -fopenmp -Iinclude -Ilib -o $@ $< $(STLIB) $(LDLIBS)
.PHONY: bench-bf16-train
bench-bf16-train: $(B)/bench/bf16_train
	@uptime
	OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2 $(B)/bench/bf16_train models/fmnist-mid.json --threads 2 $(BF16_TRAIN_ARGS)
	OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2 $(B)/bench/bf16_train models/fmnist-convd.json --threads 2 $(BF16_TRAIN_ARGS)
	@uptime
ORT_DIR := $(B)/ort
ORT_ARGS ?=
ORT_NODE := $(ORT_DIR)/node_modules/onnxruntime-node/package.json
$(ORT_NODE):
	@scripts/install-deps.sh bench
	@mkdir -p $(ORT_DIR)
	npm install --ignore-scripts --no-audit --no-fund --prefix $(ORT_DIR) onnxruntime-node@$(ORT_VERSION)
	@test -f $@
$(B)/bench/lib_bench: bench/ort/lib_bench.c bench/util.h $(HDR) $(SHLIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -O2 $(WARN) -Iinclude -o $@ $< -L$(B) -ltransgan -Wl,-rpath,'$$ORIGIN/..' -lm
.PHONY: bench-ort ort-test
ORT_COMPARE = /usr/bin/python3 bench/ort/compare.py --lib-bench $(B)/bench/lib_bench --lib $(SHLIB) \
	    --ort-dir $(ORT_DIR) $(ORT_ARGS) $(BENCH_DESCS)
bench-ort: $(ORT_NODE) $(B)/bench/lib_bench
	$(ORT_COMPARE)
# (make bench's rule is here: its prerequisites need ORT_NODE defined)
bench: $(B)/bench/bench $(ORT_NODE) $(B)/bench/lib_bench
	/usr/bin/python3 bench/run.py --bench $(B)/bench/bench $(BENCH_ARGS) $(BENCH_DESCS)
	$(ORT_COMPARE)
ort-test: $(ORT_NODE) $(SHLIB)
	@T=$$(mktemp -d); trap 'rm -rf "$$T"' EXIT; \
	/usr/bin/python3 bench/ort/export.py tests/data/tiny-train.json --out $$T --lib $(SHLIB) \
	    --ort-dir $(ORT_DIR) --check-batch 5 --require-onnx

# ---------------------------------------------------------------- demo
demo:
	@scripts/install-deps.sh demo
	$(MAKE) all examples
	@B=$(B) scripts/demo.sh

# ---------------------------------------------------------------- install
transgan.pc: pkgconfig/transgan.pc.in $(HDR)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCDIR@|$(INCDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' $< > $@

# Installing into the live system (DESTDIR empty) ends with ldconfig, so that
# programs and the Python bindings find libtransgan.so.0 at once; only root
# can run it, anyone else is told to. LDCONFIG= (empty) skips it.
LDCONFIG ?= ldconfig
define ldconfig_live
	@if [ -n "$(DESTDIR)" ] || [ -z "$(LDCONFIG)" ]; then :; \
	elif ! lc=$$(PATH="$$PATH:/sbin:/usr/sbin" command -v $(LDCONFIG)); then \
	  echo "note: $(LDCONFIG) not found: the dynamic loader may not find $(SONAME) until it runs"; \
	elif [ "$$(id -u)" != 0 ]; then \
	  echo "note: not root, so the dynamic loader's cache was not refreshed: run 'sudo ldconfig'"; \
	  echo "(if $(LIBDIR) is not listed in /etc/ld.so.conf.d/, set LD_LIBRARY_PATH=$(LIBDIR) instead)"; \
	else \
	  echo "$$lc"; "$$lc" || exit 1; \
	  if [ "$(1)" = install ] && ! "$$lc" -p | grep -qF "=> $(LIBDIR)/$(SONAME)"; then \
	    echo "note: $(LIBDIR) is not a folder the dynamic loader searches: add it to a file in"; \
	    echo "/etc/ld.so.conf.d/ and run ldconfig, or set LD_LIBRARY_PATH=$(LIBDIR)"; \
	  fi; \
	fi
endef

install: all transgan.pc
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(PKGDIR) $(DESTDIR)$(DOCDIR)
	install -m 644 $(HDR) include/transgan.hpp $(DESTDIR)$(INCDIR)/
	install -m 755 $(SHLIB) $(DESTDIR)$(LIBDIR)/
	ln -sf libtransgan.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libtransgan.so
	install -m 644 $(STLIB) $(DESTDIR)$(LIBDIR)/
	install -m 644 transgan.pc $(DESTDIR)$(PKGDIR)/
	install -m 644 README.md CHANGELOG.md $(wildcard docs/*.md) $(DESTDIR)$(DOCDIR)/
	$(call ldconfig_live,install)

uninstall:
	rm -f $(DESTDIR)$(INCDIR)/transgan.h $(DESTDIR)$(INCDIR)/transgan.hpp $(DESTDIR)$(LIBDIR)/libtransgan.so* \
	    $(DESTDIR)$(LIBDIR)/libtransgan.a $(DESTDIR)$(PKGDIR)/transgan.pc
	rm -rf $(DESTDIR)$(DOCDIR)
	$(call ldconfig_live,uninstall)

clean:
	rm -rf build build-asan build-avx2 build-sse41 $(FB) transgan.pc
