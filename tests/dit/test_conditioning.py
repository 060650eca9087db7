import pytest
import torch

from latentaudio.data.demo import SCALES
from latentaudio.data.metadata import KEYS, NOTE_NAMES, key_index
from latentaudio.dit.conditioning import Conditioner, LabelConditioner, TimingConditioner
from latentaudio.dit.model import DiT
from latentaudio.dit.musical import BeatGrid, KeyPitchClassConditioner, TempoConditioner, key_pitch_classes
from latentaudio.dit.text_encoders import ByteTextEncoder, T5TextEncoder

GLOBAL_DIM, CROSS_DIM = 16, 12


def batch():
    return {
        "seconds_start": torch.tensor([0.0, 3.5, 10.0]),
        "seconds_total": torch.tensor([4.0, 30.0, 47.0]),
        "label": torch.tensor([0, 2, -1]),
        "caption": ["a drum loop", "rain on a tin roof, ünïcödé", ""],
    }


def full_conditioner(**kwargs) -> Conditioner:
    torch.manual_seed(0)
    defaults = dict(global_dim=GLOBAL_DIM, cross_dim=CROSS_DIM, timing=True, num_labels=3, text="bytes")
    return Conditioner(**{**defaults, **kwargs}, text_depth=1, text_heads=2)


def test_timing_conditioner():
    timing = TimingConditioner(8, max_seconds=60.0)
    out = timing(torch.tensor([0.0, 1.0]), torch.tensor([10.0, 10.25]))
    assert out.shape == (2, 8)
    assert not torch.allclose(out[0], out[1])  # a quarter second apart is distinguishable
    beyond = timing(torch.tensor([0.0]), torch.tensor([1000.0]))
    torch.testing.assert_close(beyond, timing(torch.tensor([0.0]), torch.tensor([60.0])))


def test_label_conditioner_null_and_range():
    labels = LabelConditioner(3, 8)
    out = labels(torch.tensor([0, 2, -1]))
    assert out.shape == (3, 8)
    torch.testing.assert_close(out[2], labels.embedding.weight[3])
    with pytest.raises(ValueError, match="labels"):
        labels(torch.tensor([3]))


def test_byte_text_encoder():
    encoder = ByteTextEncoder(CROSS_DIM, depth=1, heads=2, max_length=10)
    ids, mask = encoder.tokenize(["hi", "", "a long caption that is truncated"])
    assert ids.shape == (3, 10)
    assert ids[0, :4].tolist() == [1, 3 + ord("h"), 3 + ord("i"), 2] and mask[0].sum() == 4
    assert mask[1].sum() == 2  # the empty caption keeps its start and end tokens
    assert ids[2, -1] == encoder.EOS and mask[2].all()
    tokens, mask = encoder(["hi", ""])
    assert tokens.shape == (2, 4, CROSS_DIM) and mask.dtype == torch.bool
    assert torch.equal(tokens[1, 2:], torch.zeros(2, CROSS_DIM))


@pytest.mark.parametrize(
    "kwargs, global_dim, cross_dim",
    [
        (dict(), GLOBAL_DIM, CROSS_DIM),
        (dict(text=None), GLOBAL_DIM, 0),
        (dict(timing=False), GLOBAL_DIM, CROSS_DIM),
        (dict(num_labels=0), GLOBAL_DIM, CROSS_DIM),
        (dict(timing=False, num_labels=0), 0, CROSS_DIM),
        (dict(timing=False, num_labels=0, text=None), 0, 0),
    ],
)
def test_conditioner_outputs_feed_the_dit(kwargs, global_dim, cross_dim):
    conditioner = full_conditioner(**kwargs).eval()  # eval: no CFG dropout
    assert conditioner.global_cond_dim == global_dim and conditioner.cross_attn_dim == cross_dim
    cond = conditioner(batch())
    if global_dim:
        assert cond["global_cond"].shape == (3, global_dim)
    else:
        assert cond["global_cond"] is None
    if cross_dim:
        longest = max(len(caption.encode("utf-8")) for caption in batch()["caption"]) + 2  # start, end
        assert cond["cross_cond"].shape == (3, longest, cross_dim) and cond["cross_mask"].shape == (
            3,
            longest,
        )
    else:
        assert cond["cross_cond"] is None and cond["cross_mask"] is None
    dit = DiT(8, 32, 1, 2, global_cond_dim=global_dim, cross_attn_dim=cross_dim)
    assert dit(torch.randn(3, 8, 5), torch.rand(3), **cond).shape == (3, 8, 5)


def test_full_dropout_equals_force_uncond_and_zero_dropout_differs():
    never = full_conditioner(cfg_dropout=0.0).train()
    always = full_conditioner(cfg_dropout=1.0).train()
    always.load_state_dict(never.state_dict())
    dropped = always(batch())
    uncond = never(batch(), force_uncond=True)
    kept = never(batch())
    for key in ("global_cond", "cross_cond", "cross_mask"):
        assert torch.equal(dropped[key], uncond[key])
    assert not torch.allclose(kept["global_cond"], uncond["global_cond"])
    assert kept["cross_cond"].shape != uncond["cross_cond"].shape or not torch.allclose(
        kept["cross_cond"], uncond["cross_cond"]
    )
    # eval mode never drops
    always.eval()
    assert torch.equal(always(batch())["global_cond"], never(batch())["global_cond"])


def test_dropout_per_condition_and_rate():
    conditioner = full_conditioner(cfg_dropout={"label": 1.0}).train()
    reference = full_conditioner(cfg_dropout=0.0)
    reference.load_state_dict(conditioner.state_dict())
    no_label = batch()
    no_label["label"] = torch.full((3,), -1)
    torch.testing.assert_close(conditioner(batch())["global_cond"], reference(no_label)["global_cond"])
    assert torch.equal(conditioner(batch())["cross_cond"], reference(batch())["cross_cond"])

    timing_only = Conditioner(GLOBAL_DIM, timing=True, cfg_dropout=0.5).train()
    torch.manual_seed(0)
    many = {"seconds_total": torch.full((2000,), 10.0)}
    dropped = (timing_only(many)["global_cond"] == timing_only.timing.null).all(dim=1).float().mean()
    assert 0.45 < dropped < 0.55


def test_missing_keys_are_unconditional():
    conditioner = full_conditioner().eval()
    cond = conditioner({"batch_size": 3})
    uncond = conditioner(batch(), force_uncond=True)
    for key in ("global_cond", "cross_cond", "cross_mask"):
        assert torch.equal(cond[key], uncond[key])
    with pytest.raises(ValueError, match="batch size"):
        conditioner({})


def test_conditioner_rejects_bad_specs():
    with pytest.raises(ValueError, match="cross_dim"):
        Conditioner(GLOBAL_DIM, text="bytes")
    with pytest.raises(ValueError, match="text_path"):
        Conditioner(GLOBAL_DIM, cross_dim=8, text="t5")
    with pytest.raises(ValueError, match="cfg_dropout"):
        Conditioner(GLOBAL_DIM, cfg_dropout={"caption": 0.1})


def test_t5_missing_transformers_is_a_clear_error(tmp_path):
    try:
        import transformers  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install transformers"):
            T5TextEncoder(str(tmp_path))
    else:
        pytest.skip("transformers is installed")


def test_t5_text_encoder(tmp_path):
    """A tiny random T5 and a tokenizer saved locally; needs transformers and sentencepiece-free
    tokenizers (a byte-level ByT5 tokenizer needs no vocabulary file)."""
    transformers = pytest.importorskip("transformers")
    config = transformers.T5Config(
        vocab_size=384, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2, decoder_start_token_id=0
    )
    transformers.T5EncoderModel(config).save_pretrained(tmp_path)
    transformers.ByT5Tokenizer().save_pretrained(tmp_path)
    encoder = T5TextEncoder(str(tmp_path), max_length=16)
    tokens, mask = encoder(["a drum loop", ""])
    assert tokens.shape[0] == 2 and tokens.shape[2] == 16 and mask.dtype == torch.bool
    assert not any(p.requires_grad for p in encoder.parameters())
    conditioner = Conditioner(GLOBAL_DIM, cross_dim=CROSS_DIM, text="t5", text_path=str(tmp_path))
    assert conditioner(batch())["cross_cond"].shape[2] == CROSS_DIM


def test_label_tokens_give_the_label_to_cross_attention_too():
    from latentaudio.dit.conditioning import Conditioner

    conditioner = Conditioner(global_dim=16, cross_dim=8, num_labels=3, label_tokens=True, cfg_dropout=0.0)
    assert conditioner.cross_attn_dim == 8 and conditioner.global_cond_dim == 16
    out = conditioner({"label": torch.tensor([0, 2, -1])})
    assert out["cross_cond"].shape == (3, 1, 8) and out["cross_mask"].all()
    assert torch.equal(out["cross_cond"][2, 0], conditioner.label_token.embedding.weight[3])  # the null label
    uncond = conditioner({"label": torch.tensor([0, 2, 1])}, force_uncond=True)
    assert torch.equal(uncond["cross_cond"][:, 0], conditioner.label_token.embedding.weight[3].expand(3, -1))
    # with text the label token goes first, then the caption's tokens
    both = Conditioner(16, 8, num_labels=3, text="bytes", label_tokens=True, text_heads=2)
    joined = both({"label": torch.tensor([1]), "caption": ["ab"]})
    assert joined["cross_cond"].shape == (1, 1 + 4, 8) and joined["cross_mask"].all()
    with pytest.raises(ValueError, match="label_tokens needs"):
        Conditioner(16, 0, num_labels=3, label_tokens=True)


def test_label_dropout_drops_both_ways_in_together():
    from latentaudio.dit.conditioning import Conditioner

    conditioner = Conditioner(
        global_dim=16, cross_dim=8, num_labels=3, label_tokens=True, cfg_dropout=0.5
    ).train()
    torch.manual_seed(0)
    out = conditioner({"label": torch.zeros(64, dtype=torch.long)})
    null_token = conditioner.label_token.embedding.weight[3]
    dropped_token = (out["cross_cond"][:, 0] == null_token).all(dim=1)
    null_global = conditioner.label.embedding.weight[3] + 0  # timing is on: compare the difference
    kept_global = conditioner.label.embedding.weight[0]
    timing = out["global_cond"] - torch.where(dropped_token[:, None], null_global, kept_global)
    assert 0 < int(dropped_token.sum()) < 64
    assert torch.allclose(timing, timing[:1].expand_as(timing), atol=1e-6)  # one timing, labels matched


def test_tempo_conditioner_is_continuous_and_has_a_null():
    torch.manual_seed(0)
    tempo = TempoConditioner(GLOBAL_DIM)
    out = tempo(torch.tensor([120.0, 121.0, 60.0, float("nan"), 0.0]))
    assert out.shape == (5, GLOBAL_DIM)
    near, far = (out[0] - out[1]).norm(), (out[0] - out[2]).norm()
    assert 0 < near < far  # a tempo never seen lands between ones that were
    assert torch.equal(out[3], tempo.null) and torch.equal(out[4], tempo.null)


@pytest.mark.parametrize("encoding", ["embedding", "pitch_classes"])
def test_tempo_and_key_reach_the_global_condition_and_drop_out(encoding):
    torch.manual_seed(0)
    options = dict(timing=True, tempo=True, key=True, key_encoding=encoding)
    conditioner = Conditioner(GLOBAL_DIM, cfg_dropout=0.0, **options).eval()
    base = {
        "seconds_total": torch.tensor([4.0, 4.0]),
        "bpm": torch.tensor([80.0, 140.0]),
        "key": torch.tensor([0, 21]),
    }
    cond = conditioner(base)["global_cond"]
    assert not torch.allclose(cond[0], cond[1])
    same_tempo = {**base, "bpm": torch.tensor([80.0, 80.0])}
    same_both = {**same_tempo, "key": torch.tensor([21, 21])}
    assert not torch.allclose(*conditioner(same_tempo)["global_cond"])  # the key alone differs
    assert torch.allclose(*conditioner(same_both)["global_cond"])
    missing = conditioner({"seconds_total": torch.tensor([4.0, 4.0])})["global_cond"]
    unknown = conditioner({**base, "bpm": torch.full((2,), float("nan")), "key": torch.tensor([-1, -1])})
    torch.testing.assert_close(missing, unknown["global_cond"])
    dropping = Conditioner(GLOBAL_DIM, cfg_dropout={"tempo": 1.0, "key": 1.0}, **options)
    dropping.load_state_dict(conditioner.state_dict())
    torch.testing.assert_close(dropping.train()(base)["global_cond"], missing)
    with pytest.raises(ValueError, match=r"must lie in \[-1, 24\)"):
        conditioner({**base, "key": torch.tensor([0, 24])})


def test_keys_as_pitch_classes_share_what_keys_share():
    table = key_pitch_classes()
    c_major, a_minor, g_major = (key_index(k) for k in ("C major", "A minor", "G major"))
    assert table.shape == (24, 24) and (table[:, :12].sum(1) == 7).all() and (table[:, 12:].sum(1) == 1).all()
    assert torch.equal(table[c_major, :12], table[a_minor, :12])  # relative keys: one scale, two tonics
    assert table[c_major, 12 + 0] == 1 and table[a_minor, 12 + 9] == 1
    assert (table[c_major, :12] != table[g_major, :12]).sum() == 2  # F and F#: one sharp apart
    for index, key in enumerate(KEYS):  # the scales the demo data is written in, in metadata's order
        tonic, mode = NOTE_NAMES.index(key.split()[0]), key.split()[1]
        assert set(table[index, :12].nonzero().flatten().tolist()) == {(tonic + s) % 12 for s in SCALES[mode]}
    # keys that share pitch classes are nearer than keys that share few (an untrained MLP keeps it)
    torch.manual_seed(0)
    encode = KeyPitchClassConditioner(GLOBAL_DIM)
    out = encode(torch.tensor([c_major, g_major, key_index("F# major"), -1]))
    assert (out[0] - out[1]).norm() < (out[0] - out[2]).norm()
    assert torch.equal(out[3], encode.null)
    with pytest.raises(ValueError, match="key_encoding"):
        Conditioner(GLOBAL_DIM, key=True, key_encoding="circle")


def test_beat_grid_ticks_on_the_beat_and_continues_across_windows():
    rate = 62.5  # the demo latents' frames a second: 120 bpm is a beat every 31.25 frames
    grid = BeatGrid(rate)
    clock = grid(torch.tensor([120.0, 90.0]), torch.zeros(2), 250)  # (2, 8, 250)
    assert clock.shape == (2, grid.dim, 250)
    beat_cos = clock[0, len(BeatGrid.CYCLES_PER_BEAT) + BeatGrid.CYCLES_PER_BEAT.index(1.0)]
    beats = torch.arange(8) * 31.25  # where the beats fall, in frames
    on_the_beat = torch.cos(2 * torch.pi * (beats.round() - beats) / 31.25)  # the frame grid's rounding
    torch.testing.assert_close(beat_cos[beats.round().long()], on_the_beat)
    assert float(beat_cos[15:17].max()) < -0.99  # half a beat later: the opposite phase
    # a window starting 1.6 s in continues the clock of the whole clip
    later = grid(torch.tensor([120.0, 90.0]), torch.full((2,), 100 / rate), 150)
    torch.testing.assert_close(later, clock[..., 100:], atol=1e-4, rtol=0)
    silent = grid(torch.tensor([float("nan"), 0.0]), torch.zeros(2), 10)
    assert not silent.any()  # no tempo: no clock


def test_beat_grid_follows_the_tempo_dropout_and_needs_the_tempo():
    torch.manual_seed(0)
    kwargs = dict(global_dim=GLOBAL_DIM, timing=True, tempo=True, tempo_grid=True, frame_rate=50.0)
    conditioner = Conditioner(**kwargs, cfg_dropout=0.0)
    assert conditioner.aligned_dim == BeatGrid(50.0).dim
    asked = {"seconds_total": torch.tensor([4.0, 4.0]), "bpm": torch.tensor([100.0, float("nan")])}
    aligned = conditioner(asked, frames=20)["aligned_cond"]
    assert aligned.shape == (2, conditioner.aligned_dim, 20)
    assert aligned[0].any() and not aligned[1].any()
    dropped = Conditioner(**kwargs, cfg_dropout={"tempo": 1.0}).train()(asked, frames=20)["aligned_cond"]
    assert not dropped.any()  # dropped with the global tempo: guidance's null has no clock either
    assert not conditioner(asked, force_uncond=True, frames=20)["aligned_cond"].any()
    with pytest.raises(ValueError, match="needs frames"):
        conditioner(asked)
    with pytest.raises(ValueError, match="tempo=true"):
        Conditioner(GLOBAL_DIM, tempo_grid=True, frame_rate=50.0)
    with pytest.raises(ValueError, match="frame rate"):
        Conditioner(GLOBAL_DIM, tempo=True, tempo_grid=True)


def phoneme_batch(frames: int = 12):
    from latentaudio.speech.units import frame_features

    timing = [("d", 0.0, 0.1), ("ˈaɪ", 0.1, 0.3), ("_", 0.3, 0.4)]
    ids, progress = frame_features(timing, frames, frame_rate=40.0)
    other, _ = frame_features([("s", 0.0, 0.4)], frames, frame_rate=40.0)
    return {
        "seconds_total": torch.tensor([0.4, 0.4]),
        "phoneme_ids": torch.stack([ids, other]),
        "phoneme_progress": torch.stack([progress, progress]),
    }


def test_phonemes_become_frame_features_with_a_null_for_guidance():
    conditioner = Conditioner(GLOBAL_DIM, phonemes=True, phoneme_dim=8).eval()
    assert conditioner.aligned_dim == 8 and conditioner.cross_attn_dim == 0
    batch = phoneme_batch()
    aligned = conditioner(batch, frames=12)["aligned_cond"]
    assert aligned.shape == (2, 8, 12)
    assert not torch.allclose(aligned[0], aligned[1])  # other phonemes, other features
    assert not torch.allclose(aligned[0, :, 1], aligned[0, :, 6])  # "d" and "aɪ" differ frame by frame
    null = conditioner(batch, force_uncond=True, frames=12)["aligned_cond"]
    missing = conditioner({"seconds_total": batch["seconds_total"]}, frames=12)["aligned_cond"]
    torch.testing.assert_close(null, missing)  # no text and dropped text are one null
    assert torch.allclose(null[0], null[1])
    always = Conditioner(GLOBAL_DIM, phonemes=True, phoneme_dim=8, cfg_dropout={"phonemes": 1.0}).train()
    always.load_state_dict(conditioner.state_dict())
    torch.testing.assert_close(always(batch, frames=12)["aligned_cond"], null)
    with pytest.raises(ValueError, match="cover 12 frames, the latents 10"):
        conditioner(batch, frames=10)
    with pytest.raises(ValueError, match="needs phoneme_ids"):
        conditioner({"seconds_total": batch["seconds_total"]})


def test_denoiser_puts_known_latents_before_phoneme_features():
    from latentaudio.dit.denoiser import Denoiser

    torch.manual_seed(0)
    conditioner = Conditioner(GLOBAL_DIM, phonemes=True, phoneme_dim=8, cfg_dropout=0.0)
    dit = DiT(4, 16, 1, 2, global_cond_dim=conditioner.global_cond_dim, aligned_cond_channels=4 + 1 + 8)
    for p in dit.parameters():  # adaLN-Zero starts closed: open it so the output depends on the inputs
        torch.nn.init.normal_(p, std=0.1)
    denoiser = Denoiser(dit, conditioner).eval()
    x, t, batch = torch.randn(2, 4, 12), torch.full((2,), 0.5), phoneme_batch()
    known = torch.zeros(2, 5, 12)
    with torch.no_grad():
        out = denoiser(x, t, batch, aligned_cond=known)
        guided = denoiser.guided(x, t, batch, cfg_scale=1.0, aligned_cond=known)
        other = denoiser(x, t, {**batch, "phoneme_ids": batch["phoneme_ids"].flip(0)}, aligned_cond=known)
        both = denoiser.guided(x, t, batch, cfg_scale=3.0, aligned_cond=known)
    torch.testing.assert_close(out, guided)
    assert not torch.allclose(out, other) and both.shape == out.shape


def test_voice_statistics_and_the_voice_condition():
    from latentaudio.dit.conditioning import voice_statistics

    latents = torch.randn(2, 3, 50) * torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1) + 4.0
    mask = torch.arange(50)[None].expand(2, -1) < torch.tensor([[50], [20]])
    stats = voice_statistics(latents, mask)
    assert stats.shape == (2, 6)
    torch.testing.assert_close(stats[1, :3], latents[1, :, :20].mean(-1))
    torch.testing.assert_close(stats[1, 3:], latents[1, :, :20].std(-1, unbiased=False))
    torch.manual_seed(0)
    conditioner = Conditioner(
        GLOBAL_DIM, timing=False, voice=True, voice_latent_dim=3, cfg_dropout=0.0
    ).eval()
    assert conditioner.global_cond_dim == GLOBAL_DIM
    cond = conditioner({"voice": stats})["global_cond"]
    assert not torch.allclose(cond[0], cond[1])  # two voices
    none = conditioner({"voice": torch.full((2, 6), float("nan"))})["global_cond"]
    torch.testing.assert_close(none, conditioner({"batch_size": 2})["global_cond"])
    torch.testing.assert_close(none, conditioner({"voice": stats}, force_uncond=True)["global_cond"])
    with pytest.raises(ValueError, match="another VAE"):
        conditioner({"voice": torch.zeros(2, 8)})
    with pytest.raises(ValueError, match="voice_latent_dim"):
        Conditioner(GLOBAL_DIM, voice=True)
