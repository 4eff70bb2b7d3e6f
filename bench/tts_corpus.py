#!/usr/bin/env python3
"""Builds a speech-like benchmark corpus from Debian's speech synthesizers.

The corpus is in the VIVOS layout (16 kHz mono PCM-16 WAV)::

    OUT/train/waves/<SPK>/<SPK>_R001.wav   OUT/train/prompts.txt
    OUT/test/waves/<SPK>/<SPK>_R001.wav    OUT/test/prompts.txt
    OUT/{train,test}/genders.txt           OUT/voices.json
    OUT/utterances.jsonl                   OUT/summary.json

Speakers (the voices of :func:`catalogue`):

- **train**: the MBROLA diphone voices (each one real person's recorded
  diphones) driven by espeak-ng, in their own language (and in English
  for the voices espeak-ng also maps onto English);
- **test, same family** (``test == "same"``): MBROLA voices held out of
  training (:data:`SAME_FAMILY_TEST`);
- **test, cross family** (``test == "cross"``): festival's diphone,
  cluster-unit and HTS voices, flite's voices and espeak-ng's own formant
  voices (variants such as ``m3`` or ``klatt``, mostly speaking
  Vietnamese): other synthesizers, never seen in training.

The speaker id is ``<family>-<split>-<voice>`` (``mbrola-train-de1``,
``mbrola-test-us3``, ``festival-test-rab``, ``espeak-test-klatt``), so the
family is the id's first field; ``voices.json`` holds each speaker's
synthesizer, voice, language, family, test kind and gender.  Voices whose
synthesizer or data is not installed, or that fail a short trial
synthesis, are left out (and listed by the command).

Each utterance speaks a sentence drawn from a word list of its language
(numbers spelled by the synthesizer) at a random speaking rate and pitch,
is 2-8 s long with 0.1-0.4 s of pauses around the speech, then goes
through a channel drawn from the split's mix (:data:`TRAIN_MIX`,
:data:`TEST_MIX`): reverberation (a generated exponentially decaying
room response), additive noise (white, pink, brown, or babble of
espeak-ng talkers in the test mix) at 5-30 dB SNR, telephone band
(300-3400 Hz at 8 kHz), mu-law or A-law coding and a level.  The test mix
is harsher and differs from the training mix (brown noise and babble,
A-law, longer reverberation), so the benchmark measures generalisation to
unseen speakers, synthesizers and channels.

Everything is drawn from generators seeded by ``(seed, utterance id)``:
the corpus is the same for a seed whatever the number of workers.  Each
WAV is written under a temporary name and renamed; a run skips the
utterances already made with the same plan, so an interrupted run
resumes, and a complete corpus is left as it is.

Usage::

    sudo bash bench/install_tts.sh       # once: the Debian packages
    python bench/tts_corpus.py --out bench_data/tts_corpus
    python bench/tts_corpus.py --list_voices     # what is installed
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy.signal import butter, fftconvolve, sosfiltfilt

from deep_speaker_sb.cli import run_cli
from deep_speaker_sb.dsp import resample, trim_silence
from deep_speaker_sb.errors import ConfigError, DataError, MissingFileError
from deep_speaker_sb.utils import (
    Pathlike,
    atomic_write,
    outputs_up_to_date,
    save_options,
    write_json,
)

#: Bump when the synthesis or the channel changes: utterances are redone.
CORPUS_VERSION = 1
#: Sample rate of the corpus (as VIVOS).
SAMPLE_RATE = 16000
#: Shortest and longest utterance (seconds, pauses included).
MIN_DUR, MAX_DUR = 2.0, 8.0
#: Synthesis attempts (fewer or more words) to land in that range.
MAX_ATTEMPTS = 4
#: Seconds one synthesizer call may take.
SYNTH_TIMEOUT = 120

INSTALL_HINT = (
    "install the Debian packages with `sudo bash bench/install_tts.sh` "
    "(or `make bench-corpus`)"
)

# --------------------------------------------------------------------------
# Word lists
# --------------------------------------------------------------------------

#: Everyday words per language (sentences are random draws from them).
WORDS: dict[str, str] = {
    "vi": "tôi bạn chúng ta người nhà nước sách mẹ bố ngày đêm trời biển "
    "núi sông thành phố trường học cây hoa tình yêu thời gian tiếng đất "
    "mưa nắng cơm lớn nhỏ đẹp mới hôm nay ngày mai ăn uống đi về làm việc "
    "nói nghe đọc viết của và với rất không có là một hai ba bốn năm sáu "
    "bảy tám chín mười xe đường chợ bánh mì cà phê Hà Nội Sài Gòn Việt "
    "Nam gia đình con em anh chị sáng chiều tối quê hương vui buồn",
    "en": "the house water book mother father day night sun moon sea "
    "mountain river city school tree flower sky love time people woman "
    "language country rain food friend big small beautiful new today "
    "tomorrow eat drink go come learn work speak listen read write and "
    "with very not have is car road market bread coffee family child "
    "morning evening station window garden",
    "de": "das Haus Wasser Buch Mutter Vater Tag Nacht Sonne Mond Meer Berg "
    "Fluss Stadt Schule Baum Blume Himmel Liebe Zeit Mensch Frau Sprache "
    "Land Regen Essen Freund groß klein schön neu heute morgen trinken "
    "gehen kommen lernen arbeiten sprechen hören lesen schreiben und mit "
    "sehr nicht haben ist Auto Straße Markt Brot Kaffee Familie Kind "
    "Abend Bahnhof Fenster Garten",
    "fr": "la maison eau livre mère père jour nuit soleil lune mer montagne "
    "rivière ville école arbre fleur ciel amour temps homme femme langue "
    "pays pluie repas ami grand petit beau nouveau demain manger boire "
    "aller venir apprendre travailler parler écouter lire écrire et avec "
    "très pas avoir est voiture route marché pain café famille enfant "
    "soir gare fenêtre jardin",
    "es": "la casa agua libro madre padre día noche sol luna mar montaña "
    "río ciudad escuela árbol flor cielo amor tiempo hombre mujer idioma "
    "país lluvia comida amigo grande pequeño bonito nuevo hoy mañana "
    "comer beber ir venir aprender trabajar hablar escuchar leer escribir "
    "y con muy no tener es coche calle mercado pan café familia niño "
    "tarde estación ventana jardín",
    "it": "la casa acqua libro madre padre giorno notte sole luna mare "
    "montagna fiume città scuola albero fiore cielo amore tempo uomo donna "
    "lingua paese pioggia cibo amico grande piccolo bello nuovo oggi "
    "domani mangiare bere andare venire imparare lavorare parlare "
    "ascoltare leggere scrivere e con molto non avere è macchina strada "
    "mercato pane caffè famiglia bambino sera stazione finestra giardino",
    "pt": "a casa água livro mãe pai dia noite sol lua mar montanha rio "
    "cidade escola árvore flor céu amor tempo homem mulher língua país "
    "chuva comida amigo grande pequeno bonito novo hoje amanhã comer "
    "beber ir vir aprender trabalhar falar ouvir ler escrever e com muito "
    "não ter é carro rua mercado pão café família criança tarde estação "
    "janela jardim",
    "nl": "het huis water boek moeder vader dag nacht zon maan zee berg "
    "rivier stad school boom bloem hemel liefde tijd mens vrouw taal land "
    "regen eten vriend groot klein mooi nieuw vandaag morgen drinken gaan "
    "komen leren werken spreken luisteren lezen schrijven en met heel "
    "niet hebben is auto straat markt brood koffie familie kind avond "
    "station raam tuin",
    "af": "die huis water boek moeder vader dag nag son maan see berg "
    "rivier stad skool boom blom hemel liefde tyd mens vrou taal land "
    "reën kos vriend groot klein mooi nuut vandag môre eet drink gaan kom "
    "leer werk praat luister lees skryf en met baie nie het is motor "
    "straat mark brood koffie familie kind aand stasie venster tuin",
    "cs": "dům voda kniha matka otec den noc slunce měsíc moře hora řeka "
    "město škola strom květina nebe láska čas člověk žena jazyk země déšť "
    "jídlo přítel velký malý krásný nový dnes zítra jíst pít jít přijít "
    "učit pracovat mluvit poslouchat číst psát a s velmi ne mít je auto "
    "ulice trh chleba káva rodina dítě večer nádraží okno zahrada",
    "pl": "dom woda książka matka ojciec dzień noc słońce księżyc morze "
    "góra rzeka miasto szkoła drzewo kwiat niebo miłość czas człowiek "
    "kobieta język kraj deszcz jedzenie przyjaciel duży mały piękny nowy "
    "dzisiaj jutro jeść pić iść przyjść uczyć pracować mówić słuchać "
    "czytać pisać i z bardzo nie mieć jest samochód ulica rynek chleb "
    "kawa rodzina dziecko wieczór dworzec okno ogród",
    "hr": "kuća voda knjiga majka otac dan noć sunce mjesec more planina "
    "rijeka grad škola drvo cvijet nebo ljubav vrijeme čovjek žena jezik "
    "zemlja kiša hrana prijatelj velik malen lijep nov danas sutra jesti "
    "piti ići doći učiti raditi govoriti slušati čitati pisati i s vrlo "
    "ne imati je auto ulica tržnica kruh kava obitelj dijete večer "
    "kolodvor prozor vrt",
    "ro": "casa apa carte mama tata zi noapte soare lună mare munte râu "
    "oraș școală copac floare cer dragoste timp om femeie limbă țară "
    "ploaie mâncare prieten mic frumos nou azi mâine bea merge veni "
    "învăța lucra vorbi asculta citi scrie și cu foarte nu are este "
    "mașină stradă piață pâine cafea familie copil seară gară fereastră "
    "grădină",
    "hu": "ház víz könyv anya apa nap éjszaka hold tenger hegy folyó város "
    "iskola fa virág ég szerelem idő ember nő nyelv ország eső étel barát "
    "nagy kicsi szép új ma holnap enni inni menni jönni tanulni dolgozni "
    "beszélni hallgatni olvasni írni és nagyon nem van autó utca piac "
    "kenyér kávé család gyerek este állomás ablak kert",
    "sv": "huset vatten bok mamma pappa dag natt sol måne hav berg flod "
    "stad skola träd blomma himmel kärlek tid människa kvinna språk land "
    "regn mat vän stor liten vacker ny idag imorgon äta dricka gå komma "
    "lära arbeta tala lyssna läsa skriva och med mycket inte ha är bil "
    "gata torg bröd kaffe familj barn kväll station fönster trädgård",
    "is": "hús vatn bók móðir faðir dagur nótt sól tungl haf fjall borg "
    "skóli tré blóm himinn ást tími maður kona tungumál land rigning "
    "matur vinur stór lítill fallegur nýr borða drekka fara koma læra "
    "vinna tala hlusta lesa skrifa og með mjög ekki hafa er bíll gata "
    "markaður brauð kaffi fjölskylda barn kvöld stöð gluggi garður",
    "et": "maja vesi raamat ema isa päev öö päike kuu meri mägi jõgi linn "
    "kool puu lill taevas armastus aeg inimene naine keel riik vihm toit "
    "sõber suur väike ilus uus täna homme süüa juua minna tulla õppida "
    "töötada rääkida kuulata lugeda kirjutada ja koos väga ei on auto "
    "tänav turg leib kohv perekond laps õhtu jaam aken aed",
    "lt": "namas vanduo knyga motina tėvas diena naktis saulė mėnulis jūra "
    "kalnas upė miestas mokykla medis gėlė dangus meilė laikas žmogus "
    "moteris kalba šalis lietus maistas draugas didelis mažas gražus "
    "naujas šiandien rytoj valgyti gerti eiti ateiti mokytis dirbti "
    "kalbėti klausyti skaityti rašyti ir su labai ne yra automobilis "
    "gatvė turgus duona kava šeima vaikas vakaras stotis langas sodas",
    "la": "domus aqua liber mater pater dies nox sol luna mare mons flumen "
    "urbs schola arbor flos caelum amor tempus homo femina lingua terra "
    "pluvia cibus amicus magnus parvus pulcher novus hodie cras edere "
    "bibere ire venire discere laborare loqui audire legere scribere et "
    "cum valde non habere est via forum panis familia puer vesper "
    "fenestra hortus",
    "mi": "whare wai pukapuka whaea matua rā pō marama moana maunga awa "
    "tāone kura rākau puawai rangi aroha wā tangata wahine reo whenua ua "
    "kai hoa nui iti ātaahua hou āianei āpōpō inu haere ako mahi kōrero "
    "whakarongo pānui tuhituhi me ki tino kāore motokā huarahi mākete "
    "parāoa kawhe whānau tamaiti ahiahi teihana matapihi māra",
    "id": "rumah air buku ibu ayah hari malam matahari bulan laut gunung "
    "sungai kota sekolah pohon bunga langit cinta waktu orang perempuan "
    "bahasa negara hujan makanan teman besar kecil indah baru ini besok "
    "makan minum pergi datang belajar bekerja berbicara mendengar "
    "membaca menulis dan dengan sangat tidak punya adalah mobil jalan "
    "pasar roti kopi keluarga anak sore stasiun jendela kebun",
    "tr": "ev su kitap anne baba gün gece güneş ay deniz dağ nehir şehir "
    "okul ağaç çiçek gökyüzü aşk zaman insan kadın dil ülke yağmur yemek "
    "arkadaş büyük küçük güzel yeni bugün yarın içmek gitmek gelmek "
    "öğrenmek çalışmak konuşmak dinlemek okumak yazmak ve ile çok değil "
    "var araba sokak pazar ekmek kahve aile çocuk akşam istasyon pencere "
    "bahçe",
    "fi": "talo vesi kirja äiti isä päivä yö aurinko kuu meri vuori joki "
    "kaupunki koulu puu kukka taivas rakkaus aika ihminen nainen kieli "
    "maa sade ruoka ystävä iso pieni kaunis uusi tänään huomenna syödä "
    "juoda mennä tulla oppia tehdä puhua kuunnella lukea kirjoittaa ja "
    "kanssa hyvin ei olla on auto katu tori leipä kahvi perhe lapsi ilta "
    "asema ikkuna puutarha",
    "ca": "la casa aigua llibre mare pare dia nit sol lluna mar muntanya "
    "riu ciutat escola arbre flor cel amor temps home dona llengua país "
    "pluja menjar amic gran petit bonic nou avui demà beure anar venir "
    "aprendre treballar parlar escoltar llegir escriure i amb molt no "
    "tenir és cotxe carrer mercat pa cafè família nen tarda estació "
    "finestra jardí",
    "el": "σπίτι νερό βιβλίο μητέρα πατέρας μέρα νύχτα ήλιος φεγγάρι "
    "θάλασσα βουνό ποτάμι πόλη σχολείο δέντρο λουλούδι ουρανός αγάπη "
    "χρόνος άνθρωπος γυναίκα γλώσσα χώρα βροχή φαγητό φίλος μεγάλο μικρό "
    "όμορφο καινούριο σήμερα αύριο τρώω πίνω πηγαίνω έρχομαι μαθαίνω "
    "δουλεύω μιλάω ακούω διαβάζω γράφω και με πολύ δεν έχω είναι "
    "αυτοκίνητο δρόμος αγορά ψωμί καφές οικογένεια παιδί βράδυ σταθμός "
    "παράθυρο κήπος",
    "ru": "дом вода книга мама папа день ночь солнце луна море гора река "
    "город школа дерево цветок небо любовь время человек женщина язык "
    "страна дождь еда друг большой маленький красивый новый сегодня "
    "завтра есть пить идти прийти учить работать говорить слушать читать "
    "писать и с очень не иметь это машина улица рынок хлеб кофе семья "
    "ребёнок вечер вокзал окно сад",
    "he": "בית מים ספר אמא אבא יום לילה שמש ירח ים הר נהר עיר עץ פרח "
    "שמיים אהבה זמן אדם אישה שפה ארץ גשם אוכל חבר גדול קטן יפה חדש היום "
    "מחר לאכול לשתות ללכת לבוא ללמוד לעבוד לדבר להקשיב לקרוא לכתוב עם "
    "מאוד לא יש מכונית רחוב שוק לחם קפה משפחה ילד ערב תחנה חלון גן",
    "ar": "بيت ماء كتاب أم أب يوم ليل شمس قمر بحر جبل نهر مدينة مدرسة شجرة "
    "وردة سماء حب وقت إنسان امرأة لغة بلد مطر طعام صديق كبير صغير جميل "
    "جديد اليوم غدا يأكل يشرب يذهب يأتي يتعلم يعمل يتكلم يسمع يقرأ يكتب "
    "مع جدا لا عند هو سيارة شارع سوق خبز قهوة عائلة طفل مساء محطة نافذة "
    "حديقة",
    "fa": "خانه آب کتاب مادر پدر روز شب خورشید ماه دریا کوه رود شهر مدرسه "
    "درخت گل آسمان عشق زمان انسان زن زبان کشور باران غذا دوست بزرگ کوچک "
    "زیبا نو امروز فردا خوردن نوشیدن رفتن آمدن آموختن کار گفتن شنیدن "
    "خواندن نوشتن و با خیلی نه داشتن است ماشین خیابان بازار نان قهوه "
    "خانواده کودک عصر ایستگاه پنجره باغ",
    "hi": "घर पानी किताब माँ पिता दिन रात सूरज चाँद समुद्र पहाड़ नदी शहर "
    "स्कूल पेड़ फूल आसमान प्यार समय आदमी औरत भाषा देश बारिश खाना दोस्त "
    "बड़ा छोटा सुंदर नया आज कल पीना जाना आना सीखना काम बोलना सुनना "
    "पढ़ना लिखना और साथ बहुत नहीं है गाड़ी सड़क बाज़ार रोटी चाय परिवार "
    "बच्चा शाम स्टेशन खिड़की बगीचा",
    "te": "ఇల్లు నీరు పుస్తకం అమ్మ నాన్న రోజు రాత్రి సూర్యుడు చంద్రుడు "
    "సముద్రం కొండ నది నగరం బడి చెట్టు పువ్వు ఆకాశం ప్రేమ కాలం మనిషి "
    "స్త్రీ భాష దేశం వర్షం అన్నం స్నేహితుడు పెద్ద చిన్న అందమైన కొత్త "
    "ఈరోజు రేపు తినడం తాగడం వెళ్ళడం రావడం పని మాట్లాడడం వినడం చదవడం "
    "రాయడం మరియు చాలా కాదు ఉంది బండి వీధి సంత రొట్టె కాఫీ కుటుంబం "
    "సాయంత్రం కిటికీ తోట",
    "ja": "いえ みず ほん はは ちち ひる よる たいよう つき うみ やま かわ "
    "まち がっこう き はな そら あい じかん ひと おんな ことば くに あめ "
    "ごはん ともだち おおきい ちいさい きれい あたらしい きょう あした "
    "たべる のむ いく くる まなぶ はたらく はなす きく よむ かく とても "
    "ない ある です くるま みち いちば かぞく こども ゆうがた えき まど "
    "にわ",
    "zh": "家 水 书 妈妈 爸爸 天 晚上 太阳 月亮 海 山 河 城市 学校 树 花 "
    "天空 爱 时间 人 女人 语言 国家 雨 饭 朋友 大 小 漂亮 新 今天 明天 "
    "吃 喝 去 来 学习 工作 说 听 读 写 和 很 不 有 是",
}
#: Malay shares the Indonesian list.
WORDS["ms"] = WORDS["id"]

#: Languages of the babble talkers (espeak-ng's default voices).
BABBLE_LANGS = ("en", "de", "fr", "es", "it", "pl", "nl", "pt")


def make_sentence(
    lang: str, rng: np.random.Generator, n_words: int, numbers: bool = True
) -> str:
    """A random sentence of ``n_words`` tokens in ``lang``.

    Tokens are words of :data:`WORDS` and, when ``numbers``, sometimes a
    number in digits (spelled out by the synthesizer); a comma follows
    some tokens, and the sentence ends with a full stop or a question
    mark.

    Arguments
    ---------
    lang : str
        A key of :data:`WORDS`.
    rng : numpy.random.Generator
        The draws.
    n_words : int
        Number of tokens.
    numbers : bool
        Whether numbers may appear.

    Returns
    -------
    str
        The sentence.

    Example
    -------
    >>> s = make_sentence("vi", np.random.default_rng(0), 6)
    >>> s == make_sentence("vi", np.random.default_rng(0), 6)
    True
    >>> len(s.split()), s[-1] in ".?"
    (6, True)
    """
    words = WORDS[lang].split()
    tokens = []
    for i in range(n_words):
        if numbers and rng.random() < 0.06:
            token = str(int(rng.integers(2, 2030)))
        else:
            token = str(rng.choice(words))
        if i < n_words - 1 and rng.random() < 0.1:
            token += ","
        tokens.append(token)
    end = "?" if rng.random() < 0.15 else "."
    text = " ".join(tokens) + end
    return text[:1].upper() + text[1:]


# --------------------------------------------------------------------------
# Voices
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Voice:
    """One speaker of the corpus: a synthesizer voice.

    Arguments
    ---------
    speaker : str
        Speaker id, ``<family>-<split>-<voice>`` (no ``_``).
    synth : str
        ``"espeak-ng+mbrola"``, ``"espeak-ng"``, ``"festival"`` or
        ``"flite"``.
    name : str
        The synthesizer's name of the voice (``de1``, ``m3``,
        ``rab_diphone``, ``awb``).
    lang : str
        Language of its own text (a key of :data:`WORDS`).
    family : str
        ``"mbrola"``, ``"festival"``, ``"flite"`` or ``"espeak"``.
    test : str or None
        ``"same"`` (same family as training), ``"cross"``, or ``None`` for
        a training voice.
    gender : str
        ``"m"`` or ``"f"``.
    other_langs : tuple of (str, float)
        Other languages the voice speaks, with the share of utterances.
    encoding : str
        Text encoding the synthesizer reads (festival's voices).
    f0 : float
        Nominal mean f0 (Hz) of a flite voice (its pitch is set around
        it); 0 where the pitch is set otherwise.
    """

    speaker: str
    synth: str
    name: str
    lang: str
    family: str
    test: str | None
    gender: str
    other_langs: tuple[tuple[str, float], ...] = ()
    encoding: str = "utf-8"
    f0: float = 0.0

    @property
    def split(self) -> str:
        """``"train"`` or ``"test"``."""
        return "train" if self.test is None else "test"

    def voice_arg(self, lang: str) -> str:
        """The synthesizer's voice argument to speak ``lang``.

        Example
        -------
        >>> v = {v.speaker: v for v in catalogue()}
        >>> v["mbrola-train-de1"].voice_arg("en")
        'mb-de1-en'
        >>> v["espeak-test-m3"].voice_arg("vi")
        'vi+m3'
        """
        if self.synth == "espeak-ng+mbrola":
            own = lang == self.lang
            return f"mb-{self.name}" if own else f"mb-{self.name}-{lang}"
        if self.synth == "espeak-ng":
            return f"{lang}+{self.name}" if self.name else lang
        return self.name


#: MBROLA voices: name, gender, language, and whether espeak-ng also maps
#: it onto English (``mb-<name>-en``).
MBROLA_VOICES = (
    "af1 m af en|ar1 m ar|ar2 m ar|br1 m pt|br2 f pt|br3 m pt|br4 f pt|"
    "ca1 m fr|ca2 m fr|cn1 f zh|cr1 m hr|cz1 f cs|cz2 m cs|"
    "de1 f de en|de2 m de en|de3 f de en|de4 m de en|de5 f de en|"
    "de6 m de en|de7 f de|de8 m de|ee1 m et|en1 m en|es1 m es|es2 m es|"
    "es3 f es|es4 m es|fr1 m fr en|fr2 f fr|fr3 m fr|fr4 f fr en|fr5 m fr|"
    "fr6 m fr|fr7 m fr|gr1 m el|gr2 m el en|hb1 m he|hb2 f he|hu1 m hu en|"
    "ic1 m is|id1 m id|in1 m hi|in2 f hi|ir1 m fa|it1 m it|it2 f it|"
    "it3 m it|it4 f it|jp1 m ja|jp2 f ja|jp3 f ja|la1 m la|lt1 m lt|"
    "lt2 m lt|ma1 f ms|mx1 m es|mx2 m es|nl1 m nl|nl2 m nl en|nl3 f nl|"
    "nz1 m mi|pl1 f pl en|pt1 f pt|ro1 m ro en|sw1 m sv en|sw2 f sv en|"
    "tl1 f te|tr1 m tr|tr2 f tr|us1 f en|us2 m en|us3 m en|vz1 m es"
)
#: MBROLA voices held out of training: the same-family test speakers
#: (six women, six men, each from a language with training voices too).
SAME_FAMILY_TEST = "de7 es3 it4 br4 cz1 sw2 us3 fr6 mx2 gr2 ar2 lt2".split()
#: Share of an MBROLA voice's utterances in English, where it speaks it.
MBROLA_ENGLISH_SHARE = 0.25

#: festival voices: name, gender, language, text encoding.  Left out: the
#: MBROLA voices again (festvox-en1, us1-3) and kal_diphone (the speaker
#: of flite's kal16); the Hindi/Marathi/Telugu NSK voices are one person
#: (only the Hindi one is listed).
FESTIVAL_VOICES = (
    "don_diphone m en ascii|ked_diphone m en ascii|rab_diphone m en ascii|"
    "cmu_us_slt_arctic_hts f en ascii|czech_dita f cs iso-8859-2|"
    "czech_krb m cs iso-8859-2|czech_machac m cs iso-8859-2|"
    "czech_ph m cs iso-8859-2|hy_fi_mv_diphone m fi iso-8859-1|"
    "suo_fi_lj_diphone f fi iso-8859-1|lp_diphone f it iso-8859-1|"
    "pc_diphone m it iso-8859-1|el_diphone m es iso-8859-1|"
    "upc_ca_ona_hts f ca iso-8859-1|msu_ru_nsh_clunits m ru utf-8|"
    "hindi_NSK_diphone m hi utf-8"
)
#: flite's voices: name, gender, nominal f0 (slt is festival's HTS voice).
FLITE_VOICES = "awb m 105|rms m 100|kal16 m 105"
#: espeak-ng's own formant voices (variants that differ in formants or
#: in the Klatt source, not only in pitch) and their gender.
ESPEAK_VARIANTS = (
    "m2 m|m3 m|m5 m|m6 m|m7 m|f1 f|f2 f|f3 f|f4 f|f5 f|klatt m|klatt4 m|"
    "Annie f|Gene m"
)
#: Languages of the espeak-ng formant voices besides Vietnamese.
ESPEAK_OTHER_LANGS = (("en", 0.15), ("fr", 0.05), ("es", 0.05))


def _short(name: str) -> str:
    """A speaker-id field of a voice name (lower case, no ``_``)."""
    name = name.lower()
    for suffix in ("_diphone", "_clunits", "_hts", "_arctic"):
        name = name.removesuffix(suffix)
    for prefix in ("czech_", "cmu_us_", "upc_ca_", "hy_fi_", "suo_fi_"):
        name = name.removeprefix(prefix)
    return name.rpartition("_")[2]


def catalogue() -> list[Voice]:
    """Every voice the corpus may use, installed or not.

    Returns
    -------
    list of Voice
        Training voices, then same-family and cross-family test voices.

    Example
    -------
    >>> voices = catalogue()
    >>> Counter((v.family, v.split) for v in voices)[("mbrola", "train")]
    61
    >>> all("_" not in v.speaker for v in voices)
    True
    >>> sorted({v.test for v in voices if v.split == "test"})
    ['cross', 'same']
    """
    voices = []
    for row in MBROLA_VOICES.split("|"):
        name, gender, lang, *english = row.split()
        test = "same" if name in SAME_FAMILY_TEST else None
        split = "train" if test is None else "test"
        voices.append(
            Voice(
                speaker=f"mbrola-{split}-{name}",
                synth="espeak-ng+mbrola",
                name=name,
                lang=lang,
                family="mbrola",
                test=test,
                gender=gender,
                other_langs=(("en", MBROLA_ENGLISH_SHARE),) if english else (),
            )
        )
    for row in FESTIVAL_VOICES.split("|"):
        name, gender, lang, encoding = row.split()
        voices.append(
            Voice(
                f"festival-test-{_short(name)}",
                "festival",
                name,
                lang,
                "festival",
                "cross",
                gender,
                encoding=encoding,
            )
        )
    for row in FLITE_VOICES.split("|"):
        name, gender, f0 = row.split()
        voices.append(
            Voice(
                f"flite-test-{name}",
                "flite",
                name,
                "en",
                "flite",
                "cross",
                gender,
                encoding="ascii",
                f0=float(f0),
            )
        )
    for row in ESPEAK_VARIANTS.split("|"):
        name, gender = row.split()
        voices.append(
            Voice(
                f"espeak-test-{_short(name)}",
                "espeak-ng",
                name,
                "vi",
                "espeak",
                "cross",
                gender,
                other_langs=ESPEAK_OTHER_LANGS,
            )
        )
    return sorted(voices, key=lambda v: (v.split != "train", v.speaker))


def required_tools(voices: Iterable[Voice]) -> dict[str, str]:
    """The programs the voices need, with the Debian package of each.

    Example
    -------
    >>> required_tools(v for v in catalogue() if v.family == "flite")
    {'espeak-ng': 'espeak-ng', 'flite': 'flite'}
    """
    tools = {"espeak-ng": "espeak-ng"}  # babble talkers; most voices
    for v in voices:
        if v.synth == "espeak-ng+mbrola":
            tools["mbrola"] = "mbrola"
        elif v.synth == "festival":
            tools["text2wave"] = "festival"
        elif v.synth == "flite":
            tools["flite"] = "flite"
    return tools


def check_tools(voices: Iterable[Voice]) -> None:
    """Raises :class:`MissingFileError` naming a missing program."""
    for tool, package in required_tools(voices).items():
        if shutil.which(tool) is None:
            raise MissingFileError(
                f"{tool} not found (Debian package {package}): {INSTALL_HINT}"
            )


# --------------------------------------------------------------------------
# Channel
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Channel:
    """The recording channel of one utterance.

    Arguments
    ---------
    rt60 : float
        Reverberation time (s) of the room; 0 for none.
    drr_db : float
        Direct-to-reverberant energy ratio (dB) of the room.
    noise : str
        ``""`` (none), ``"white"``, ``"pink"``, ``"brown"`` or
        ``"babble"``.
    snr_db : float
        Speech-to-noise power ratio (dB) of the added noise.
    telephone : bool
        Whether the signal goes through a 300-3400 Hz telephone band at
        8 kHz.
    codec : str
        ``""``, ``"mulaw"`` or ``"alaw"`` (8-bit companding).
    peak_db : float
        Peak level of the result (dBFS).
    floor_db : float
        Level of the recorder's white noise floor (RMS, dB below the
        peak), always added.
    """

    rt60: float = 0.0
    drr_db: float = 0.0
    noise: str = ""
    snr_db: float = 0.0
    telephone: bool = False
    codec: str = ""
    peak_db: float = -3.0
    floor_db: float = -60.0


@dataclass(frozen=True)
class ChannelMix:
    """How channels are drawn for one split (probabilities and ranges)."""

    p_reverb: float
    rt60: tuple[float, float]
    drr_db: tuple[float, float]
    p_noise: float
    noises: tuple[str, ...]
    snr_db: tuple[float, float]
    p_telephone: float
    p_codec: float
    codecs: tuple[str, ...]
    peak_db: tuple[float, float]
    floor_db: tuple[float, float]


#: Training channels: mild rooms, white or pink noise, mu-law.
TRAIN_MIX = ChannelMix(
    p_reverb=0.3,
    rt60=(0.1, 0.35),
    drr_db=(3.0, 12.0),
    p_noise=0.6,
    noises=("white", "pink"),
    snr_db=(10.0, 30.0),
    p_telephone=0.2,
    p_codec=0.2,
    codecs=("mulaw",),
    peak_db=(-12.0, -1.0),
    floor_db=(-75.0, -55.0),
)
#: Test channels: other noises (brown, babble), longer rooms, A-law as
#: well, a wider level range; as often telephone as wideband would make
#: the mean cepstrum a channel detector (an MFCC baseline at chance), so
#: the mix stays moderate.
TEST_MIX = ChannelMix(
    p_reverb=0.4,
    rt60=(0.15, 0.5),
    drr_db=(2.0, 10.0),
    p_noise=0.6,
    noises=("pink", "brown", "babble"),
    snr_db=(8.0, 30.0),
    p_telephone=0.25,
    p_codec=0.3,
    codecs=("alaw", "mulaw"),
    peak_db=(-15.0, -1.0),
    floor_db=(-70.0, -50.0),
)


def draw_channel(mix: ChannelMix, rng: np.random.Generator) -> Channel:
    """Draws one utterance's channel from ``mix``.

    Example
    -------
    >>> ch = draw_channel(TEST_MIX, np.random.default_rng(3))
    >>> ch == draw_channel(TEST_MIX, np.random.default_rng(3))
    True
    >>> ch.noise in ("",) + TEST_MIX.noises
    True
    """
    u = rng.random(4)  # one draw per decision, always made
    ranges = rng.random(5)
    noise = str(rng.choice(mix.noises))
    codec = str(rng.choice(mix.codecs))

    def pick(span: tuple[float, float], r: float) -> float:
        return round(span[0] + (span[1] - span[0]) * float(r), 3)

    reverb = u[0] < mix.p_reverb
    return Channel(
        rt60=pick(mix.rt60, ranges[0]) if reverb else 0.0,
        drr_db=pick(mix.drr_db, ranges[1]) if reverb else 0.0,
        noise=noise if u[1] < mix.p_noise else "",
        snr_db=pick(mix.snr_db, ranges[2]) if u[1] < mix.p_noise else 0.0,
        telephone=bool(u[2] < mix.p_telephone),
        codec=codec if u[3] < mix.p_codec else "",
        peak_db=pick(mix.peak_db, ranges[3]),
        floor_db=pick(mix.floor_db, ranges[4]),
    )


def colored_noise(
    n: int, color: str, rng: np.random.Generator, sample_rate: int = 16000
) -> np.ndarray:
    """Gaussian noise of unit RMS with a power spectrum ~ ``1/f^alpha``.

    ``color`` is ``"white"`` (alpha 0), ``"pink"`` (1) or ``"brown"``
    (2); below 20 Hz the spectrum is flat.

    Example
    -------
    >>> x = colored_noise(16000, "pink", np.random.default_rng(0))
    >>> x.shape, round(float(np.sqrt(np.mean(x ** 2))), 6)
    ((16000,), 1.0)
    """
    alpha = {"white": 0.0, "pink": 1.0, "brown": 2.0}[color]
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    spec *= np.maximum(freqs, 20.0) ** (-alpha / 2)
    x = np.fft.irfft(spec, n)
    return x / np.sqrt(np.mean(x**2))


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``x`` plus ``noise`` scaled to ``snr_db`` below its power.

    Powers are means over the whole signals; ``noise`` is tiled or cut to
    the length of ``x``.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> x = np.sin(np.arange(8000) / 5.0)
    >>> y = add_noise(x, rng.standard_normal(3000), 10.0)
    >>> n = y - x
    >>> round(float(10 * np.log10(np.mean(x ** 2) / np.mean(n ** 2))), 6)
    10.0
    """
    noise = np.resize(noise, len(x))
    p_x = np.mean(x**2)
    p_n = np.mean(noise**2)
    if p_x == 0 or p_n == 0:
        return x.copy()
    return x + noise * np.sqrt(p_x / p_n / 10 ** (snr_db / 10))


def room_response(
    sample_rate: int, rt60: float, drr_db: float, rng: np.random.Generator
) -> np.ndarray:
    """A small room impulse response: a direct path and a tail of
    exponentially decaying noise (60 dB down after ``rt60`` seconds,
    with ``drr_db`` of direct-to-reverberant energy ratio).

    Example
    -------
    >>> h = room_response(16000, 0.3, 6.0, np.random.default_rng(0))
    >>> float(h[0]), len(h) / 16000
    (1.0, 0.36)
    >>> round(float(10 * np.log10(1 / np.sum(h[1:] ** 2))), 6)
    6.0
    """
    n = int(round(1.2 * rt60 * sample_rate))
    t = np.arange(1, n) / sample_rate
    tail = rng.standard_normal(n - 1) * 10 ** (-3 * t / rt60)
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail**2))
    return np.concatenate([[1.0], tail])


def telephone_band(
    x: np.ndarray, sample_rate: int, low: float = 300.0, high: float = 3400.0
) -> np.ndarray:
    """The signal through a telephone line: resampled to 8 kHz,
    band-passed to ``low``-``high`` Hz (4th-order Butterworth, zero
    phase), resampled back.

    Example
    -------
    >>> sr = 16000
    >>> t = np.arange(sr) / sr
    >>> def gain_db(f):
    ...     x = np.sin(2 * np.pi * f * t)
    ...     y = telephone_band(x, sr)[2000:-2000]
    ...     return 10 * np.log10(np.mean(y ** 2) / np.mean(x ** 2))
    >>> [bool(gain_db(f) > -1) for f in (1000, 2000)]
    [True, True]
    >>> [bool(gain_db(f) < -20) for f in (60, 6000)]
    [True, True]
    """
    y = resample(x.astype(np.float32), sample_rate, 8000).astype(np.float64)
    sos = butter(4, [low, high], btype="bandpass", fs=8000, output="sos")
    y = sosfiltfilt(sos, y)
    y = resample(y.astype(np.float32), 8000, sample_rate)
    out = np.zeros(len(x))
    out[: min(len(x), len(y))] = y[: len(x)]
    return out


def _quantize8(y: np.ndarray) -> np.ndarray:
    """Companded values in [-1, 1] through 8 bits (256 levels)."""
    code = np.round((np.clip(y, -1, 1) + 1) / 2 * 255)
    return code / 255 * 2 - 1


def mulaw_roundtrip(x: np.ndarray, mu: float = 255.0) -> np.ndarray:
    """``x`` (in [-1, 1]) coded with 8-bit mu-law companding and decoded.

    Example
    -------
    >>> x = 0.5 * np.sin(np.arange(8000) / 7.0)
    >>> e = mulaw_roundtrip(x) - x
    >>> bool(10 * np.log10(np.mean(x ** 2) / np.mean(e ** 2)) > 30)
    True
    """
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    y = _quantize8(y)
    return np.clip(np.sign(y) * ((1 + mu) ** np.abs(y) - 1) / mu, -1, 1)


def alaw_roundtrip(x: np.ndarray, a: float = 87.6) -> np.ndarray:
    """``x`` (in [-1, 1]) coded with 8-bit A-law companding and decoded.

    Example
    -------
    >>> x = 0.5 * np.sin(np.arange(8000) / 7.0)
    >>> e = alaw_roundtrip(x) - x
    >>> bool(10 * np.log10(np.mean(x ** 2) / np.mean(e ** 2)) > 30)
    True
    """
    ax = np.abs(np.clip(x, -1, 1))
    k = 1 + np.log(a)
    y = np.where(
        ax < 1 / a, a * ax / k, (1 + np.log(np.maximum(a * ax, 1e-12))) / k
    )
    y = np.abs(_quantize8(np.sign(x) * y))
    out = np.where(y < 1 / k, y * k / a, np.exp(y * k - 1) / a)
    return np.sign(x) * np.minimum(out, 1.0)


def apply_channel(
    x: np.ndarray,
    sample_rate: int,
    channel: Channel,
    rng: np.random.Generator,
    noise: np.ndarray | None = None,
) -> np.ndarray:
    """Passes clean speech through ``channel``.

    In order: the room (convolution, same length), the noise (``noise``
    when given, e.g. babble, else :func:`colored_noise` of
    ``channel.noise``) at ``channel.snr_db``, the telephone band, the
    level (peak at ``channel.peak_db`` dBFS), the noise floor and the
    codec.

    Arguments
    ---------
    x : numpy.ndarray
        Clean mono speech.
    sample_rate : int
        Its sample rate.
    channel : Channel
        What to apply.
    rng : numpy.random.Generator
        Draws of the room and the noise.
    noise : numpy.ndarray, optional
        Noise to add instead of generated coloured noise.

    Returns
    -------
    numpy.ndarray
        The result, same length, within [-1, 1].

    Example
    -------
    >>> x = np.sin(np.arange(16000) / 3.0)
    >>> ch = Channel(rt60=0.3, drr_db=5, noise="pink", snr_db=10,
    ...              telephone=True, codec="alaw", peak_db=-6)
    >>> y = apply_channel(x, 16000, ch, np.random.default_rng(0))
    >>> y.shape, round(float(20 * np.log10(np.abs(y).max())), 1)
    ((16000,), -6.0)
    >>> silence = apply_channel(np.zeros(800), 16000, ch,
    ...                         np.random.default_rng(0))
    >>> bool(np.all(silence != 0))  # the noise floor
    True
    """
    y = np.asarray(x, dtype=np.float64)
    if channel.rt60 > 0:
        h = room_response(sample_rate, channel.rt60, channel.drr_db, rng)
        y = fftconvolve(y, h)[: len(y)]
    if channel.noise:
        if noise is None:
            noise = colored_noise(len(y), channel.noise, rng, sample_rate)
        y = add_noise(y, noise, channel.snr_db)
    if channel.telephone:
        y = telephone_band(y, sample_rate)
    peak = np.abs(y).max()
    level = 10 ** (channel.peak_db / 20)
    if peak > 0:
        y = y * (level / peak)
    floor = level * 10 ** (channel.floor_db / 20)
    y = y + floor * rng.standard_normal(len(y))
    if channel.codec == "mulaw":
        y = mulaw_roundtrip(y)
    elif channel.codec == "alaw":
        y = alaw_roundtrip(y)
    return np.clip(y, -1.0, 1.0)


# --------------------------------------------------------------------------
# Synthesis
# --------------------------------------------------------------------------


def _run(cmd: Sequence[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(cmd),
        capture_output=True,
        timeout=SYNTH_TIMEOUT,
        check=False,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    )


def _read_audio(path: Path) -> np.ndarray:
    """A synthesizer's WAV as float64 at :data:`SAMPLE_RATE`."""
    wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return resample(wav.mean(axis=1), sr, SAMPLE_RATE).astype(np.float64)


def synthesize(
    voice: Voice,
    lang: str,
    text: str,
    rate: float,
    pitch: float,
    workdir: Path,
) -> tuple[np.ndarray, str]:
    """Speaks ``text`` with ``voice``.

    Arguments
    ---------
    voice : Voice
        The voice.
    lang : str
        The language of ``text`` (one the voice speaks).
    text : str
        What to say.
    rate : float
        Speaking rate relative to the voice's normal rate.
    pitch : float
        Pitch offset in [-1, 1] (espeak-ng: -15..+15 on its 0-99 scale;
        flite: -12..+12 % of the voice's mean f0; festival: unchanged).
    workdir : Path
        A folder for the temporary files.

    Returns
    -------
    (numpy.ndarray, str)
        The audio (float64, :data:`SAMPLE_RATE`; empty when the
        synthesizer failed) and the synthesizer's messages.
    """
    txt, wav = workdir / "in.txt", workdir / "out.wav"
    wav.unlink(missing_ok=True)
    if voice.synth.startswith("espeak-ng"):
        txt.write_text(text, encoding="utf-8")
        cmd = ["espeak-ng", "-b", "1", "-v", voice.voice_arg(lang)]
        cmd += ["-s", str(round(175 * rate)), "-p", str(round(50 + 15 * pitch))]
        cmd += ["-w", str(wav), "-f", str(txt)]
    elif voice.synth == "festival":
        txt.write_bytes(text.encode(voice.encoding, errors="replace"))
        stretch = f"(Parameter.set 'Duration_Stretch {1 / rate:.3f})"
        cmd = ["text2wave", "-eval", f"(voice_{voice.name})", "-eval"]
        cmd += [stretch, "-o", str(wav), str(txt)]
    else:  # flite
        txt.write_text(text, encoding="ascii", errors="replace")
        f0 = voice.f0 * (1 + 0.12 * pitch)
        cmd = ["flite", "-voice", voice.name]
        cmd += ["--setf", f"duration_stretch={1 / rate:.3f}"]
        cmd += ["--setf", f"int_f0_target_mean={f0:.1f}"]
        cmd += ["-f", str(txt), "-o", str(wav)]
    try:
        proc = _run(cmd)
    except FileNotFoundError:
        return np.zeros(0), f"{cmd[0]} not found"
    messages = (proc.stderr + proc.stdout).decode("utf-8", "replace")
    if proc.returncode != 0 or not wav.is_file() or wav.stat().st_size < 100:
        return np.zeros(0), messages
    try:
        return _read_audio(wav), messages
    except (RuntimeError, sf.LibsndfileError):
        return np.zeros(0), messages


def _speech_span(x: np.ndarray) -> np.ndarray:
    """``x`` without leading and trailing silence (40 dB, no margin)."""
    start, stop = trim_silence(x.astype(np.float32), SAMPLE_RATE, 40.0, 0.0)
    return x[start:stop]


def babble(
    n: int, rng: np.random.Generator, workdir: Path, talkers: int = 0
) -> np.ndarray:
    """Babble of 3-6 espeak-ng talkers (default voices of
    :data:`BABBLE_LANGS`, random pitch and rate), unit RMS, ``n`` samples.
    """
    talkers = talkers or int(rng.integers(3, 7))
    mix = np.zeros(n)
    for _ in range(talkers):
        lang = str(rng.choice(BABBLE_LANGS))
        voice = Voice("babble", "espeak-ng", "", lang, "", None, "")
        text = make_sentence(lang, rng, 40, numbers=False)
        x, _ = synthesize(
            voice,
            lang,
            text,
            float(rng.uniform(0.9, 1.3)),
            float(rng.uniform(-1.5, 1.5)),
            workdir,
        )
        x = _speech_span(x)
        if len(x) == 0:
            continue
        x = np.roll(np.resize(x, n), int(rng.integers(0, n)))
        gain = 10 ** (rng.uniform(-6, 0) / 20)
        mix += gain * x / np.sqrt(np.mean(x**2) + 1e-12)
    rms = np.sqrt(np.mean(mix**2))
    return mix / rms if rms > 0 else colored_noise(n, "pink", rng)


# --------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class UttPlan:
    """Everything drawn for one utterance before synthesis."""

    utt_id: str
    voice: Voice
    lang: str
    text_seed: int
    n_words: int
    target_dur: float
    rate: float
    pitch: float
    lead: float
    trail: float
    channel: Channel
    channel_seed: int

    def key(self) -> str:
        """A digest of the plan (an utterance is redone when it changes)."""
        blob = json.dumps([CORPUS_VERSION, asdict(self)], sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]

    def text(self, n_words: int) -> str:
        """The sentence with ``n_words`` tokens (the same draws)."""
        numbers = self.voice.synth.startswith("espeak") or self.lang == "en"
        rng = np.random.default_rng([self.text_seed, n_words])
        return make_sentence(self.lang, rng, n_words, numbers)


def utterance_rng(seed: int, utt_id: str) -> np.random.Generator:
    """The generator of one utterance: ``(seed, crc32(utt_id))``."""
    return np.random.default_rng([seed, zlib.crc32(utt_id.encode())])


def plan_utterance(voice: Voice, index: int, seed: int) -> UttPlan:
    """Draws utterance ``index`` (from 1) of ``voice``.

    Example
    -------
    >>> v = catalogue()[0]
    >>> p = plan_utterance(v, 1, seed=0)
    >>> p.utt_id, p == plan_utterance(v, 1, seed=0)
    ('mbrola-train-af1_R001', True)
    >>> MIN_DUR <= p.target_dur <= MAX_DUR
    True
    """
    utt_id = f"{voice.speaker}_R{index:03d}"
    rng = utterance_rng(seed, utt_id)
    lang = voice.lang
    u = rng.random()
    for other, share in voice.other_langs:
        if u < share:
            lang = other
            break
        u -= share
    target = float(rng.uniform(2.8, 6.5))
    rate = float(rng.uniform(0.85, 1.2))
    mix = TRAIN_MIX if voice.split == "train" else TEST_MIX
    return UttPlan(
        utt_id=utt_id,
        voice=voice,
        lang=lang,
        text_seed=int(rng.integers(2**31)),
        n_words=max(2, round(target * 2.6 * rate)),
        target_dur=round(target, 3),
        rate=round(rate, 3),
        pitch=round(float(rng.uniform(-1, 1)), 3),
        lead=round(float(rng.uniform(0.1, 0.4)), 3),
        trail=round(float(rng.uniform(0.1, 0.4)), 3),
        channel=draw_channel(mix, rng),
        channel_seed=int(rng.integers(2**31)),
    )


def plan_corpus(
    voices: Iterable[Voice], utts_per_voice: int, seed: int
) -> list[UttPlan]:
    """Every utterance of the corpus, in utterance-id order."""
    plans = [
        plan_utterance(v, i, seed)
        for v in voices
        for i in range(1, utts_per_voice + 1)
    ]
    return sorted(plans, key=lambda p: p.utt_id)


# --------------------------------------------------------------------------
# Making one utterance
# --------------------------------------------------------------------------


def wav_path(root: Path, plan: UttPlan) -> Path:
    """Where the utterance's WAV goes."""
    v = plan.voice
    return root / v.split / "waves" / v.speaker / f"{plan.utt_id}.wav"


def meta_path(root: Path, plan: UttPlan) -> Path:
    """Where the utterance's metadata (text, plan, duration) goes."""
    return root / "meta" / plan.voice.split / f"{plan.utt_id}.json"


def is_done(root: Path, plan: UttPlan) -> bool:
    """Whether the utterance exists and was made with this plan."""
    wav, meta = wav_path(root, plan), meta_path(root, plan)
    if not (wav.is_file() and meta.is_file()):
        return False
    try:
        return json.loads(meta.read_text("utf-8")).get("plan") == plan.key()
    except ValueError:
        return False


def _fit(x: np.ndarray, lead: int, trail: int) -> tuple[np.ndarray, bool]:
    """Speech with its pauses, cut (with a fade) or padded to the range."""
    y = np.concatenate([np.zeros(lead), x, np.zeros(trail)])
    lo, hi = int(MIN_DUR * SAMPLE_RATE), int(MAX_DUR * SAMPLE_RATE)
    if len(y) > hi:
        y = y[:hi].copy()
        fade = int(0.05 * SAMPLE_RATE)
        y[-fade:] *= np.linspace(1, 0, fade)
        return y, True
    if len(y) < lo:
        return np.concatenate([y, np.zeros(lo - len(y))]), True
    return y, False


def make_utterance(plan: UttPlan, root: Path) -> dict[str, Any]:
    """Synthesizes one utterance and writes its metadata and WAV.

    The number of words is adjusted (at most :data:`MAX_ATTEMPTS`
    syntheses) until speech and pauses last :data:`MIN_DUR` to
    :data:`MAX_DUR` seconds; failing that, the audio is cut or padded
    (``"fitted": true`` in the metadata).

    Returns
    -------
    dict
        The metadata written (utterance, speaker, split, text, plan
        digest, duration, ...).
    """
    lead = int(plan.lead * SAMPLE_RATE)
    trail = int(plan.trail * SAMPLE_RATE)
    n_words, tried = plan.n_words, set()
    with tempfile.TemporaryDirectory(prefix="tts_") as tmp:
        workdir = Path(tmp)
        for _ in range(MAX_ATTEMPTS):
            tried.add(n_words)
            text = plan.text(n_words)
            audio, messages = synthesize(
                plan.voice, plan.lang, text, plan.rate, plan.pitch, workdir
            )
            speech = _speech_span(audio)
            if len(speech) == 0:
                raise RuntimeError(
                    f"{plan.utt_id}: {plan.voice.synth} produced no audio "
                    f"for {text!r}: {messages.strip()[:200]}"
                )
            dur = (len(speech) + lead + trail) / SAMPLE_RATE
            if MIN_DUR <= dur <= MAX_DUR:
                break
            target = plan.target_dur / dur * n_words
            new = int(np.clip(round(target), 1, 60))
            while new in tried and 1 < new < 60:
                new += 1 if dur < MIN_DUR else -1
            if new in tried:
                break
            n_words = new
        clean, fitted = _fit(speech / np.abs(speech).max() * 0.5, lead, trail)
        rng = np.random.default_rng(plan.channel_seed)
        noise = None
        if plan.channel.noise == "babble":
            noise = babble(len(clean), rng, workdir)
        y = apply_channel(clean, SAMPLE_RATE, plan.channel, rng, noise)
    meta = {
        "utt_id": plan.utt_id,
        "speaker": plan.voice.speaker,
        "split": plan.voice.split,
        "lang": plan.lang,
        "voice": plan.voice.voice_arg(plan.lang),
        "text": text,
        "duration": round(len(y) / SAMPLE_RATE, 3),
        "rate": plan.rate,
        "pitch": plan.pitch,
        "channel": asdict(plan.channel),
        "fitted": fitted,
        "missing_diphones": messages.count("unknown, replaced"),
        "plan": plan.key(),
    }
    write_json(meta_path(root, plan), meta)
    with atomic_write(wav_path(root, plan), "wb") as f:
        sf.write(f, y, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return meta


def probe_voice(voice: Voice) -> str:
    """Tries the voice on a short sentence; ``""`` when it works, else why.

    Works means: at least 0.5 s of speech for an 8-word sentence.
    """
    text = make_sentence(voice.lang, np.random.default_rng(0), 8, False)
    with tempfile.TemporaryDirectory(prefix="tts_probe_") as tmp:
        try:
            x, messages = synthesize(voice, voice.lang, text, 1, 0, Path(tmp))
        except subprocess.TimeoutExpired:
            return "timed out"
    speech = _speech_span(x)
    if len(speech) < 0.5 * SAMPLE_RATE:
        lines = [ln for ln in messages.splitlines() if ln.strip()]
        return "no speech" + (f" ({lines[0][:100]})" if lines else "")
    return ""


# --------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------

#: The options of a corpus being built (removed once it is complete).
PARTIAL_FILE = ".partial_options.json"
#: The files a complete corpus has besides the WAVs.
INDEX_FILES = (
    "voices.json",
    "utterances.jsonl",
    "summary.json",
    "train/prompts.txt",
    "train/genders.txt",
    "test/prompts.txt",
    "test/genders.txt",
)


def select_voices(names: Sequence[str] | None = None) -> list[Voice]:
    """The catalogue, or the voices named by speaker id or voice name."""
    voices = catalogue()
    if not names:
        return voices
    chosen = [v for v in voices if v.speaker in names or v.name in names]
    unknown = set(names) - {v.speaker for v in chosen}
    unknown -= {v.name for v in chosen}
    if unknown:
        raise ConfigError(
            f"unknown voice(s): {', '.join(sorted(unknown))} (see "
            "--list_voices)"
        )
    return chosen


def corpus_options(
    voices: Sequence[Voice], utts_per_voice: int, seed: int
) -> dict[str, Any]:
    """The options that define a corpus (saved in ``options.json``),
    the channel mixes included (each utterance's channel is also in the
    digest of its plan, so a changed mix redoes what it changes)."""
    return {
        "version": CORPUS_VERSION,
        "seed": seed,
        "utts_per_voice": utts_per_voice,
        "voices": sorted(v.speaker for v in voices),
        "sample_rate": SAMPLE_RATE,
        "channel_mixes": {
            "train": asdict(TRAIN_MIX),
            "test": asdict(TEST_MIX),
        },
    }


def corpus_complete(root: Path, options: dict[str, Any]) -> bool:
    """Whether ``root`` holds the whole corpus made with ``options``."""
    outputs = [root / name for name in INDEX_FILES]
    if not outputs_up_to_date(root, outputs, options):
        return False
    with open(root / "utterances.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return all(
        (
            root / r["split"] / "waves" / r["speaker"] / f"{r['utt_id']}.wav"
        ).is_file()
        for r in rows
    )


def write_index(
    root: Path,
    voices: Sequence[Voice],
    metas: Sequence[dict[str, Any]],
    dropped: dict[str, str],
    options: dict[str, Any],
    build_s: float,
) -> dict[str, Any]:
    """Writes prompts, genders, ``voices.json``, ``utterances.jsonl`` and
    ``summary.json``, then the options (the corpus is then complete)."""
    metas = sorted(metas, key=lambda m: m["utt_id"])
    for split in ("train", "test"):
        with atomic_write(root / split / "prompts.txt") as f:
            for m in metas:
                if m["split"] == split:
                    f.write(f"{m['utt_id']} {m['text']}\n")
        with atomic_write(root / split / "genders.txt") as f:
            for v in voices:
                if v.split == split:
                    f.write(f"{v.speaker} {v.gender}\n")
    info = {
        v.speaker: {
            "synthesizer": v.synth,
            "voice": v.name,
            "language": v.lang,
            "other_languages": [lang for lang, _ in v.other_langs],
            "family": v.family,
            "split": v.split,
            "test": v.test,
            "gender": v.gender,
        }
        for v in voices
    }
    write_json(root / "voices.json", info)
    with atomic_write(root / "utterances.jsonl") as f:
        for m in metas:
            f.write(json.dumps(m, ensure_ascii=False, sort_keys=True) + "\n")
    groups = Counter()
    seconds = Counter()
    for m in metas:
        v = info[m["speaker"]]
        group = f"{v['split']}/{v['test'] or 'train'}/{v['family']}"
        groups[group] += 1
        seconds[group] += m["duration"]
    summary = {
        "speakers": dict(
            Counter(f"{v.split}/{v.test or 'train'}/{v.family}" for v in voices)
        ),
        "utterances": dict(groups),
        "hours": {k: round(s / 3600, 3) for k, s in seconds.items()},
        "total_utterances": len(metas),
        "total_hours": round(sum(seconds.values()) / 3600, 3),
        "fitted_utterances": sum(m["fitted"] for m in metas),
        "dropped_voices": dropped,
        "build_seconds": round(build_s, 1),
    }
    write_json(root / "summary.json", summary)
    save_options(root, options)
    return summary


def build_corpus(
    out: Pathlike,
    voices: Sequence[Voice],
    utts_per_voice: int = 36,
    seed: int = 0,
    workers: int = 2,
    progress: Any = None,
) -> dict[str, Any]:
    """Builds (or completes) the corpus in ``out``.

    Arguments
    ---------
    out : Pathlike
        The corpus folder.
    voices : sequence of Voice
        The candidate voices; those that fail :func:`probe_voice` are
        left out.
    utts_per_voice : int
        Utterances per voice.
    seed : int
        The seed of every draw.
    workers : int
        Synthesis processes.
    progress : callable, optional
        Called with a short message now and then (the script prints it).

    Returns
    -------
    dict
        The summary (``summary.json``), ``{"up_to_date": True}`` added
        when there was nothing to do.

    Raises
    ------
    ConfigError
        If an option is out of range, or ``out`` holds a corpus made
        with other options.
    MissingFileError
        If a synthesizer program is missing.
    DataError
        If some utterances could not be made (the others are kept).
    """
    say = progress or (lambda msg: None)
    root = Path(out)
    if utts_per_voice < 1 or workers < 1:
        raise ConfigError("--utts_per_voice and --workers must be >= 1")
    options = corpus_options(voices, utts_per_voice, seed)
    if corpus_complete(root, options):
        summary = json.loads((root / "summary.json").read_text("utf-8"))
        return {**summary, "up_to_date": True}
    for name in ("options.json", PARTIAL_FILE):
        saved = root / name
        if saved.is_file():
            previous = json.loads(saved.read_text("utf-8"))
            if previous != json.loads(json.dumps(options)):
                raise ConfigError(
                    f"{root} holds a corpus made with other options "
                    f"({saved}); delete it or choose another --out"
                )
    check_tools(voices)
    write_json(root / PARTIAL_FILE, options)
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        reasons = list(pool.map(probe_voice, voices, chunksize=4))
        dropped = {
            v.speaker: r for v, r in zip(voices, reasons, strict=True) if r
        }
        kept = [v for v, r in zip(voices, reasons, strict=True) if not r]
        for speaker, why in dropped.items():
            say(f"left out {speaker}: {why}")
        if not any(v.split == "train" for v in kept) or not any(
            v.split == "test" for v in kept
        ):
            raise MissingFileError(
                "no working train or test voice; " + INSTALL_HINT
            )
        plans = plan_corpus(kept, utts_per_voice, seed)
        todo = [p for p in plans if not is_done(root, p)]
        say(
            f"{len(kept)} voices, {len(plans)} utterances, "
            f"{len(plans) - len(todo)} already made"
        )
        futures = [pool.submit(make_utterance, p, root) for p in todo]
        failed = []
        for i, future in enumerate(as_completed(futures), 1):
            try:
                future.result()
            except (RuntimeError, subprocess.SubprocessError) as exc:
                failed.append(str(exc))
            if i % 200 == 0 or i == len(futures):
                say(f"{i}/{len(futures)} utterances made")
    if failed:
        raise DataError(
            f"{len(failed)} utterance(s) failed, the first: {failed[0]} "
            "(run the command again to retry them)"
        )
    metas = [json.loads(meta_path(root, p).read_text("utf-8")) for p in plans]
    summary = write_index(
        root, kept, metas, dropped, options, time.perf_counter() - start
    )
    (root / PARTIAL_FILE).unlink()
    return summary


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--out",
        default="bench_data/tts_corpus",
        help="corpus folder (default: bench_data/tts_corpus)",
    )
    p.add_argument(
        "--utts_per_voice",
        type=int,
        default=36,
        help="utterances per voice (default: 36)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="synthesis processes (default: 2)",
    )
    p.add_argument(
        "--voices",
        nargs="+",
        default=None,
        help="only these voices (speaker ids or voice names; default: all)",
    )
    p.add_argument(
        "--list_voices",
        action="store_true",
        help="list the voices and whether they work here, then exit",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Builds the corpus (or lists the voices); prints a summary."""
    args = parse_args(argv)
    voices = select_voices(args.voices)
    if args.list_voices:
        check_tools([])
        with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
            reasons = list(pool.map(probe_voice, voices, chunksize=4))
        for v, why in zip(voices, reasons, strict=True):
            status = f"unavailable: {why}" if why else "ok"
            print(f"{v.speaker:28s} {v.synth:17s} {v.lang:3s} {status}")
        return 0

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    summary = build_corpus(
        args.out,
        voices,
        utts_per_voice=args.utts_per_voice,
        seed=args.seed,
        workers=args.workers,
        progress=say,
    )
    if summary.get("up_to_date"):
        print(f"{args.out}: corpus up to date, nothing to do")
    print(json.dumps(summary, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
