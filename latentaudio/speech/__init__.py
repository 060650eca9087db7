"""Speech: text to speech with the same two stages, and the text, data and measures around it.

- :mod:`latentaudio.speech.text`: normalisation (unicode, case, whitespace, English numbers);
- :mod:`latentaudio.speech.symbols`: the fixed symbol vocabulary stored with a speech model;
- :mod:`latentaudio.speech.frontend`: text to symbols, phonemes through eSpeak NG or characters;
- :mod:`latentaudio.speech.layouts`: LJSpeech and LibriTTS folders to our ``metadata.csv``;
- :mod:`latentaudio.speech.espeak` and :mod:`latentaudio.speech.demo`: the demo corpus renderer;
- :mod:`latentaudio.speech.units`: timed phonemes to frame features, durations for new text;
- :mod:`latentaudio.speech.align`: phoneme timings of a recording, by synthesis and DTW;
- :mod:`latentaudio.speech.synthesis`: text to speech with a trained DiT (``Pipeline.speak``);
- :mod:`latentaudio.speech.evaluation`: which sentence was said, and in whose voice.

The network stays the DiT; nothing here imports Lightning.
"""
