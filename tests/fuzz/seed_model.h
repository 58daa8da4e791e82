/* The tiny model of the checkpoint seeds (tests/fuzz/make_seeds.c) and of
 * fuzz_checkpoint's tg_model_load_weights: small files, every state group. */
#define FUZZ_SEED_JSON                                                                        \
    "{\"format\":\"transgan\",\"format_version\":1,\"name\":\"fuzz\",\"image\":{\"size\":4,"  \
    "\"channels\":1},\"latent_dim\":2,\"generator\":{\"bottom_width\":2,\"embed_dim\":8,"     \
    "\"depths\":[1,1],\"heads\":1,\"mlp_ratio\":1},\"discriminator\":{\"patch_size\":2,"      \
    "\"embed_dim\":4,\"depth\":1,\"heads\":1,\"mlp_ratio\":1},\"training\":{\"n_critic\":1,"  \
    "\"g_batch\":1,\"d_batch\":1,\"locality\":{\"stages\":[1],\"schedule\":[[5,1]]}}}"
