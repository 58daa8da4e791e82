/* Internal: losses, gradient clipping, optimisers and the EMA: plain loops
 * over a network's parameter array. */
#ifndef TG_OPTIM_H
#define TG_OPTIM_H

#include <stddef.h>
#include <stdint.h>

/* Discriminator loss terms (docs/SPECIFICATION.md "Training step"; loss:
 * enum tg_loss_kind), each for its own batch of scores so real and fake can
 * be processed one after the other. Return the term and write d term / d score into ds. */
double tg_d_loss_real(int loss, double drift, const float *s, int64_t B, float *ds);
/* The same with the drift term's batch mean given: `mean` is the mean score
 * of the whole batch of which s is a part (data parallel); the per-score
 * terms stay means over s's B rows. */
double tg_d_loss_real_at(int loss, double drift, const float *s, int64_t B, double mean, float *ds);
double tg_d_loss_fake(int loss, const float *s, int64_t B, float *ds);
/* Generator adversarial loss: -mean s (lsgan: mean (s - 1)^2). */
double tg_g_loss(int loss, const float *s, int64_t B, float *ds);

/* Global L2 norm (in double; NaN if any value is NaN or infinite). */
double tg_grad_norm(const float *g, size_t n);
void tg_scale(float *g, size_t n, float s);
void tg_sgd_step(float *w, const float *g, size_t n, double lr);
/* PyTorch Adam (not AdamW): step counts from 1. */
void tg_adam_step(float *w, float *m, float *v, const float *g, size_t n, double lr, double b1,
                  double b2, double eps, uint64_t step);
/* ema = beta ema + (1 - beta) w */
void tg_ema_update(float *ema, const float *w, size_t n, double beta);
int tg_all_finite(const float *x, size_t n);

#endif
