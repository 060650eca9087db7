"""Speech: the text front end, transcribed-corpus layouts and the procedural demo corpus.

- :mod:`latentaudio.speech.text`: normalisation (unicode, case, whitespace, English numbers);
- :mod:`latentaudio.speech.symbols`: the fixed symbol vocabulary stored with a speech model;
- :mod:`latentaudio.speech.frontend`: text to symbols, phonemes through eSpeak NG or characters;
- :mod:`latentaudio.speech.layouts`: LJSpeech and LibriTTS folders to our ``metadata.csv``;
- :mod:`latentaudio.speech.espeak` and :mod:`latentaudio.speech.demo`: the demo corpus renderer.

The network stays the DiT; nothing here imports Lightning.
"""
