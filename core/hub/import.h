/* Importing the reference implementation's released models (ServiceNow/hdlm on the Hugging Face
 * hub, e.g. hdlm-group/hdlm-base-epsilon-0.01): a folder holding the whole Hydra training config
 * as config.json and the weights as model.safetensors (huggingface_hub's ModelHubMixin form, the
 * DDiT's own state-dict names, optionally under a "module." or "backbone." prefix; F32, BF16 or
 * F16). The import reads the architecture, the family (ε: no conditioning, mask id = tokens; γ:
 * σ conditioning, RADD input mix with γ = graph.gamma, log-linear noise) and the annealing
 * schedule from the config, converts the weights to F32 under hdlm's tensor names (the same
 * names), writes an hdlm checkpoint (the metadata hdlm.model{checkpoint=} reads) and, with a
 * store, a finished run whose noise and schedule rows let `hdlm sample/eval --run ID` bring it
 * back. pytorch_model.bin (a pickle) is not read here: scripts/convert_pth.py turns it into
 * model.safetensors. */
#ifndef HDLM_HUB_IMPORT_H
#define HDLM_HUB_IMPORT_H

#include "base/error.h"
#include "nn/model.h"

#include <stdint.h>

typedef struct hub_import_opts {
    const char *src; /* folder with config.json and model.safetensors */
    const char
        *out_dir; /* created if needed; receives model.safetensors and reference_config.json */
    const char *db_path; /* store for the run's row; NULL: checkpoint only */
    const char *name;    /* run name; NULL: the source folder's base name */
    const char *data;    /* optional corpus file recorded as the run's data (hdlm eval) */
    const char *command; /* command line recorded with the run; may be NULL */
} hub_import_opts;

typedef struct hub_import_result {
    model_config cfg;
    char family;      /* 'e' (ε-hybrid) or 'g' (γ-hybrid) */
    int64_t n_params; /* parameters of the imported model (= the reference's count) */
    int source_dtype; /* ST_F32 / ST_BF16 / ST_F16 of the source weights (the first tensor) */
    char prefix[32];  /* the state-dict prefix that was stripped ("" when none) */
    char ckpt_path[4200];
    int64_t run_id;     /* 0 without a store */
    char noise[512];    /* {"name":..,"options":{..}} as recorded */
    char schedule[512]; /* the same */
    char context[32], block_type[16];
    char tokenizer[64]; /* "gpt2", or "" when the config names another tokenizer (ids only) */
    char notes[4096];   /* what was mapped from what, one line each */
} hub_import_result;

int hub_import(const hub_import_opts *o, hub_import_result *r, error *e);

#endif
