# libtransgan - TransGAN in C on oneDNN.
#   make            build build/libtransgan.so.X.Y.Z, the .so links and libtransgan.a
#   make test       everything that tests the project (installs missing packages)
#   make demo       sample and train a small model, writing PNGs
#   make install    PREFIX=/usr/local LIBDIR=$(PREFIX)/lib DESTDIR=
#   make bench      performance against the PyTorch reference

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
HDRS := $(HDR) $(wildcard lib/*.h lib/*/*.h)

SHLIB := $(B)/libtransgan.so.$(VERSION)
STLIB := $(B)/libtransgan.a

.PHONY: all deps test-deps test unit-test asan-test abi-test ref-test example-test examples demo install uninstall clean bench
all: $(SHLIB) $(STLIB)

deps:
	@scripts/install-deps.sh build
test-deps:
	@scripts/install-deps.sh test

$(B)/obj/%.o: lib/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LIBFLAGS) -c $< -o $@

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
	@set -e; for t in $(TEST_BINS); do echo "== $$t"; OMP_NUM_THREADS=2 $$t; done

# The same tests under AddressSanitizer and UndefinedBehaviorSanitizer.
asan-test:
	$(MAKE) B=build-asan OPT="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" unit-test \
	    LDLIBS="-fsanitize=address,undefined $(LDLIBS)"

# The committed fixtures are still what the PyTorch reference computes
# (../shared/reference/transgan_ref.py; TRANSGAN_REF overrides the folder).
PYTEST := /usr/bin/python3 -m pytest -p no:cacheprovider -q
ref-test:
	$(PYTEST) tests/test_reference_io.py tests/test_train_reference.py

abi-test: all
	@sh tests/abi.sh $(B) $(VERSION) $(SONAME)

test: test-deps all
	$(MAKE) unit-test
	$(MAKE) abi-test
	$(MAKE) ref-test
	$(MAKE) example-test
	CK_FORK=no ASAN_OPTIONS=detect_leaks=1 $(MAKE) asan-test

# ---------------------------------------------------------------- examples
EXAMPLES := $(patsubst examples/%.c,$(B)/examples/%,$(wildcard examples/*.c))
$(B)/examples/%: examples/%.c $(HDR) $(SHLIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -Iinclude -o $@ $< -L$(B) -ltransgan -Wl,-rpath,'$$ORIGIN/..' -lm
examples: $(EXAMPLES)

# Each example runs on tiny settings so they cannot rot.
example-test: examples
	$(B)/examples/embed models/fmnist-small.json 3 > /dev/null
	$(B)/examples/embed tests/fixtures/tiny-ln.safetensors 3 > /dev/null
	@echo "examples: 2 passed, 0 failed"

# ---------------------------------------------------------------- demo
demo: deps all examples
	$(B)/examples/embed models/fmnist-small.json 7

# ---------------------------------------------------------------- install
transgan.pc: pkgconfig/transgan.pc.in $(HDR)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCDIR@|$(INCDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' $< > $@

install: all transgan.pc
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(PKGDIR) $(DESTDIR)$(DOCDIR)
	install -m 644 $(HDR) $(DESTDIR)$(INCDIR)/
	install -m 755 $(SHLIB) $(DESTDIR)$(LIBDIR)/
	ln -sf libtransgan.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libtransgan.so
	install -m 644 $(STLIB) $(DESTDIR)$(LIBDIR)/
	install -m 644 transgan.pc $(DESTDIR)$(PKGDIR)/
	install -m 644 README.md CHANGELOG.md $(wildcard docs/*.md) $(DESTDIR)$(DOCDIR)/

uninstall:
	rm -f $(DESTDIR)$(INCDIR)/transgan.h $(DESTDIR)$(LIBDIR)/libtransgan.so* \
	    $(DESTDIR)$(LIBDIR)/libtransgan.a $(DESTDIR)$(PKGDIR)/transgan.pc
	rm -rf $(DESTDIR)$(DOCDIR)

clean:
	rm -rf build build-asan transgan.pc
