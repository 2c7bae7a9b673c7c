//! A character-level language model: from the last 16 characters, predict the next one.
//! Embedding → two 1-D convolutions (the second dilated) → linear → cross-entropy, trained by
//! the `Trainer` on sentences from a small grammar the example generates; prints the loss
//! curve, then text sampled from the trained model one character at a time.
//! Run it with `cargo run --release --example char_model -p wengert` (under a minute).

use wengert::ndarray::{Array2, ArrayViewD, ArrayViewMutD};
use wengert::train::{
    Adam, Conv1d, Dataset, Embedding, EpochRecord, Flatten, History, Init, Linear, Module, OnEpoch,
    ParameterIds, Rng, TrainConfig, Trainer, prefixed,
};
use wengert::{NodeId, Tape};

/// Characters of context the model sees.
const CONTEXT: usize = 16;

/// Sentences from a small grammar, `phrase verb [phrase].` with `phrase` a determiner, maybe
/// an adjective, and a noun, joined by spaces, until there are at least `chars` characters.
fn generate_text(chars: usize, rng: &mut Rng) -> String {
    const INTRANSITIVE: [&str; 3] = ["sleeps", "sings", "runs"];
    const TRANSITIVE: [&str; 5] = ["sees", "likes", "chases", "finds", "helps"];
    let mut text = String::new();
    while text.len() < chars {
        push_phrase(&mut text, rng);
        text.push(' ');
        // Two sentences in three have an object.
        if rng.uniform_in(0.0, 3.0) < 2.0 {
            text.push_str(pick(&TRANSITIVE, rng));
            text.push(' ');
            push_phrase(&mut text, rng);
        } else {
            text.push_str(pick(&INTRANSITIVE, rng));
        }
        text.push_str(". ");
    }
    text
}

/// A determiner, an adjective one time in two, and a noun, with a space between each.
fn push_phrase(text: &mut String, rng: &mut Rng) {
    const DETERMINERS: [&str; 4] = ["the", "a", "every", "one"];
    const ADJECTIVES: [&str; 6] = ["small", "red", "quiet", "old", "happy", "brave"];
    const NOUNS: [&str; 7] = ["cat", "dog", "bird", "fox", "girl", "boy", "king"];
    text.push_str(pick(&DETERMINERS, rng));
    text.push(' ');
    if rng.uniform_in(0.0, 2.0) < 1.0 {
        text.push_str(pick(&ADJECTIVES, rng));
        text.push(' ');
    }
    text.push_str(pick(&NOUNS, rng));
}

/// One of `words`, uniformly.
fn pick(words: &[&'static str], rng: &mut Rng) -> &'static str {
    words[(rng.uniform_in(0.0, words.len() as f64) as usize).min(words.len() - 1)]
}

/// The distinct characters of `text`, sorted: index `i` is token `i`.
fn alphabet(text: &str) -> Vec<char> {
    let mut chars: Vec<char> = text.chars().collect();
    chars.sort_unstable();
    chars.dedup();
    chars
}

/// Every window of `CONTEXT` tokens (as floats, the embedding's input) with the token after it.
fn windows(tokens: &[usize], classes: usize) -> wengert::train::Result<Dataset<f32>> {
    let n = tokens.len() - CONTEXT;
    let x = Array2::from_shape_fn((n, CONTEXT), |(i, j)| tokens[i + j] as f32);
    let labels = tokens[CONTEXT..].to_vec();
    Dataset::classification(x, labels, classes)
}

/// The model: a module of one's own around the built-in layers, because the embedding gives
/// `[batch, positions, features]` and a convolution takes channels first.
struct CharConv {
    embed: Embedding<f32>,
    conv1: Conv1d<f32>,
    conv2: Conv1d<f32>,
    head: Linear<f32>,
}

impl CharConv {
    fn new(vocabulary: usize, seed: u64) -> wengert::train::Result<Self> {
        let mut rng = Rng::seed_from_u64(seed);
        // Two kernels of 3, the second dilated by 2: each output sees 7 positions, and the 10
        // outputs together the whole window.
        let positions = CONTEXT - 2 - 4;
        Ok(CharConv {
            embed: Embedding::new(vocabulary, 16, None, &mut rng)?,
            conv1: Conv1d::new(16, 64, 3, &mut rng)?,
            conv2: Conv1d::builder(64, 64, 3).dilation(2).build(&mut rng)?,
            head: Linear::new(64 * positions, vocabulary, Init::GlorotUniform, &mut rng)?,
        })
    }

    fn parts(&self) -> [(&str, &dyn Module<f32>); 4] {
        [
            ("embed", &self.embed),
            ("conv1", &self.conv1),
            ("conv2", &self.conv2),
            ("head", &self.head),
        ]
    }
}

impl Module<f32> for CharConv {
    fn forward(
        &self,
        tape: &mut Tape<f32>,
        params: &mut ParameterIds<'_>,
        x: NodeId,
    ) -> wengert::train::Result<NodeId> {
        let h = self.embed.forward(tape, params, x)?; // [batch, 16 positions, 16 features]
        let h = tape.transpose(h)?; // [batch, 16 channels, 16 positions]
        let h = self.conv1.forward(tape, params, h)?;
        let h = tape.relu(h)?;
        let h = self.conv2.forward(tape, params, h)?;
        let h = tape.relu(h)?; // [batch, 64, 10]
        let h = Flatten.forward(tape, params, h)?;
        self.head.forward(tape, params, h) // logits of the next character
    }

    fn parameters(&self) -> Vec<ArrayViewD<'_, f32>> {
        self.parts()
            .iter()
            .flat_map(|(_, m)| m.parameters())
            .collect()
    }

    fn parameters_mut(&mut self) -> Vec<ArrayViewMutD<'_, f32>> {
        let mut all = self.embed.parameters_mut();
        all.extend(self.conv1.parameters_mut());
        all.extend(self.conv2.parameters_mut());
        all.extend(self.head.parameters_mut());
        all
    }

    fn parameter_names(&self) -> Vec<String> {
        self.parts()
            .iter()
            .flat_map(|(name, m)| prefixed(name, m.parameter_names()))
            .collect()
    }
}

/// `length` characters sampled from `model` after `prompt`, each drawn from the softmax of
/// the logits divided by `temperature`.
fn sample(
    model: &CharConv,
    alphabet: &[char],
    prompt: &str,
    length: usize,
    temperature: f64,
    rng: &mut Rng,
) -> wengert::train::Result<String> {
    let index = |c: char| alphabet.iter().position(|&a| a == c).unwrap_or(0);
    let mut tokens: Vec<usize> = prompt.chars().map(index).collect();
    let mut text = String::from(prompt);
    for _ in 0..length {
        let start = tokens.len().saturating_sub(CONTEXT);
        let mut window = vec![index(' '); CONTEXT - (tokens.len() - start)];
        window.extend(&tokens[start..]);
        let x = Array2::from_shape_fn((1, CONTEXT), |(_, j)| window[j] as f32);
        let logits = model.predict(&x)?;
        let scaled: Vec<f64> = logits.iter().map(|&l| f64::from(l) / temperature).collect();
        let top = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = scaled.iter().map(|l| (l - top).exp()).collect();
        let mut draw = rng.uniform_in(0.0, weights.iter().sum());
        let next = weights
            .iter()
            .position(|&w| {
                draw -= w;
                draw < 0.0
            })
            .unwrap_or(weights.len() - 1);
        tokens.push(next);
        text.push(alphabet[next]);
    }
    Ok(text)
}

/// The corpus: `chars` characters of generated text, its alphabet (sorted), and every window
/// of it split 90/10 into training and validation sets.
struct Corpus {
    text: String,
    alphabet: Vec<char>,
    train: Dataset<f32>,
    valid: Dataset<f32>,
}

impl Corpus {
    fn generate(chars: usize, rng: &mut Rng) -> wengert::train::Result<Self> {
        let text = generate_text(chars, rng);
        let alphabet = alphabet(&text);
        let tokens: Vec<usize> = text
            .chars()
            .map(|c| alphabet.binary_search(&c).expect("from the text"))
            .collect();
        let all = windows(&tokens, alphabet.len())?;
        let (train, valid) = all.split(0.1, 0)?;
        Ok(Corpus {
            text,
            alphabet,
            train,
            valid,
        })
    }
}

/// Trains `model` for `epochs` with Adam at 2e-3 in batches of 64, calling `on_epoch` after each.
fn fit(
    model: &mut CharConv,
    corpus: &Corpus,
    epochs: usize,
    on_epoch: impl FnMut(&EpochRecord),
) -> wengert::train::Result<History> {
    let config = TrainConfig {
        epochs,
        batch_size: 64,
        ..TrainConfig::default()
    };
    Trainer::new(config, Adam::new(2e-3)?)
        .with_callback(OnEpoch(on_epoch))
        .fit(model, &corpus.train, Some(&corpus.valid))
}

fn main() -> wengert::train::Result<()> {
    let mut rng = Rng::seed_from_u64(0);
    let corpus = Corpus::generate(24_000, &mut rng)?;
    let alphabet = &corpus.alphabet;
    println!(
        "{} characters of generated text, {} distinct; {} windows to train on, {} to validate",
        corpus.text.len(),
        alphabet.len(),
        corpus.train.len(),
        corpus.valid.len()
    );
    println!("sample of the text: {:?}\n", &corpus.text[..120]);

    let mut model = CharConv::new(alphabet.len(), 0)?;
    println!(
        "model: {} parameters ({})",
        model.parameter_count(),
        model.parameter_names().join(", ")
    );
    println!(
        "a uniform guess would score a loss of ln {} = {:.3}\n",
        alphabet.len(),
        (alphabet.len() as f64).ln()
    );
    fit(&mut model, &corpus, 8, |r: &EpochRecord| {
        println!(
            "epoch {}  loss {:.4}  validation loss {:.4}  next character right {:.1}%",
            r.epoch,
            r.train_loss,
            r.val_loss.unwrap_or(f64::NAN),
            100.0 * r.val_accuracy.unwrap_or(0.0)
        )
    })?;

    let generated = sample(&model, alphabet, "the ", 300, 0.7, &mut rng)?;
    println!("\nsampled at temperature 0.7:\n{generated}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example cut to a shorter text and two epochs (a debug build): the validation loss
    /// falls well below a uniform guess's and keeps falling, and sampling gives text of the
    /// corpus's alphabet.
    #[test]
    fn two_epochs_learn_the_grammar_well_past_a_uniform_guess() {
        let mut rng = Rng::seed_from_u64(0);
        let corpus = Corpus::generate(4_000, &mut rng).unwrap();
        let mut model = CharConv::new(corpus.alphabet.len(), 0).unwrap();
        let history = fit(&mut model, &corpus, 2, |_: &EpochRecord| {}).unwrap();
        let losses: Vec<f64> = history
            .epochs
            .iter()
            .map(|r| r.val_loss.expect("a validation set"))
            .collect();
        let uniform = (corpus.alphabet.len() as f64).ln();
        assert_eq!(losses.len(), 2);
        assert!(losses[1] < losses[0], "{losses:?}");
        assert!(losses[1] < 0.5 * uniform, "{losses:?} against {uniform}");
        let text = sample(&model, &corpus.alphabet, "the ", 40, 0.7, &mut rng).unwrap();
        assert_eq!(text.chars().count(), 44);
        assert!(
            text.chars().all(|c| corpus.alphabet.contains(&c)),
            "{text:?}"
        );
    }
}
