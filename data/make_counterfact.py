#!/usr/bin/env python3
"""Generates data/counterfact-backlens.json (CounterFact format) from the fact tables below.

The facts are written from general knowledge (true as of 2024); see data/README.md.
Each relation has groups of subjects sharing one true object; a record's neighborhood prompts
are the relation's main template filled with the OTHER subjects of its group (same relation,
same true object), and its target_new is another group's object of the same relation.
Run: python3 data/make_counterfact.py  (deterministic; rewrites the JSON file)
"""
import json, os

# relation_id -> (main template, [2 paraphrase templates], [generation templates], groups)
# groups: list of (true object, [subjects], [allowed new objects] or None for "all other objects")
REL = [
 ("P30", "{} is located in the continent of",
  ["{} is a country on the continent of", "The continent where {} lies is"],
  ["{} is a country known for", "People who travel to {} often", "The geography of {} is"],
  [("Europe", ["France", "Germany", "Italy", "Poland", "Sweden", "Norway", "Greece", "Portugal"], None),
   ("Asia", ["Japan", "China", "India", "Thailand", "Vietnam", "Mongolia", "Nepal"], None),
   ("Africa", ["Nigeria", "Kenya", "Ghana", "Ethiopia", "Morocco", "Senegal", "Tanzania"], None),
   ("South America", ["Brazil", "Argentina", "Chile", "Peru", "Colombia", "Venezuela"], None)]),
 ("P17", "{} is located in the country of",
  ["{} is a city in the country of", "The city of {} belongs to the country of"],
  ["The best thing about {} is", "Visitors to {} usually", "The streets of {} are"],
  [("France", ["Lyon", "Marseille", "Bordeaux", "Toulouse", "Nice", "Strasbourg", "Lille"], None),
   ("Italy", ["Milan", "Naples", "Florence", "Venice", "Turin", "Bologna", "Palermo"], None),
   ("Japan", ["Osaka", "Kyoto", "Hiroshima", "Nagoya", "Sapporo", "Yokohama"], None),
   ("Germany", ["Munich", "Hamburg", "Frankfurt", "Cologne", "Stuttgart", "Dresden"], None),
   ("Spain", ["Barcelona", "Seville", "Bilbao", "Granada", "Zaragoza", "Pamplona"], None)]),
 ("P37", "The official language of {} is",
  ["In {}, the official language is", "The language officially used in {} is"],
  ["People in {} speak", "Schools in {} teach", "The newspapers of {} are written in"],
  [("French", ["France", "Monaco", "Senegal", "Gabon", "Togo", "Benin"], None),
   ("Spanish", ["Spain", "Colombia", "Venezuela", "Cuba", "Guatemala", "Costa Rica", "Honduras"], None),
   ("Portuguese", ["Portugal", "Brazil", "Angola", "Mozambique", "Cape Verde", "Guinea-Bissau"], None),
   ("Arabic", ["Saudi Arabia", "Jordan", "Kuwait", "Qatar", "Oman", "Yemen"], None)]),
 ("P103", "The mother tongue of {} is",
  ["The native language of {} is", "The first language {} learned to speak was"],
  ["{} grew up speaking", "Where {} comes from, people", "{} is known for"],
  [("French", ["Emmanuel Macron", "Jacques Chirac", "Victor Hugo", "Charles de Gaulle", "Voltaire", "Claude Monet"], None),
   ("Russian", ["Vladimir Putin", "Leo Tolstoy", "Fyodor Dostoevsky", "Anton Chekhov", "Alexander Pushkin", "Boris Yeltsin"], None),
   ("Italian", ["Giuseppe Verdi", "Luciano Pavarotti", "Federico Fellini", "Sophia Loren", "Silvio Berlusconi", "Umberto Eco"], None),
   ("Japanese", ["Hayao Miyazaki", "Akira Kurosawa", "Haruki Murakami", "Shinzo Abe", "Yukio Mishima", "Shigeru Miyamoto"], None),
   ("German", ["Angela Merkel", "Johann Wolfgang von Goethe", "Ludwig van Beethoven", "Immanuel Kant", "Karl Marx", "Friedrich Schiller"], None)]),
 ("P641", "{} professionally plays the sport of",
  ["{} is a professional athlete who plays", "The sport {} plays professionally is"],
  ["{} is famous for", "{}'s greatest strength is", "Fans of {} know that"],
  [("soccer", ["Lionel Messi", "Cristiano Ronaldo", "Kylian Mbappé", "Erling Haaland", "Mohamed Salah", "Robert Lewandowski", "Kevin De Bruyne"], None),
   ("basketball", ["LeBron James", "Stephen Curry", "Kevin Durant", "Giannis Antetokounmpo", "Nikola Jokić", "Joel Embiid"], None),
   ("tennis", ["Novak Djokovic", "Carlos Alcaraz", "Jannik Sinner", "Iga Świątek", "Aryna Sabalenka", "Coco Gauff"], None),
   ("golf", ["Tiger Woods", "Rory McIlroy", "Scottie Scheffler", "Jon Rahm", "Jordan Spieth", "Phil Mickelson"], None),
   ("baseball", ["Shohei Ohtani", "Aaron Judge", "Mike Trout", "Mookie Betts", "Bryce Harper", "Juan Soto"], None)]),
 ("P176", "{} was developed by",
  ["{} is a product of", "The company behind {} is"],
  ["{} is sold", "The main competitor of {} is", "Reviews of {} say"],
  [("Apple", ["iPhone", "iPad", "MacBook", "iPod", "Safari", "Siri", "macOS"], None),
   ("Google", ["Android", "Gmail", "Chromebook", "TensorFlow", "Kubernetes", "Chrome"], None),
   ("Microsoft", ["Windows", "Xbox", "Excel", "PowerPoint", "Outlook", "Bing", "Visual Studio"], None),
   ("Sony", ["PlayStation", "Walkman", "Bravia", "Xperia", "Trinitron", "Handycam"], None),
   ("Nintendo", ["Game Boy", "Wii", "GameCube", "Super Mario Bros.", "The Legend of Zelda", "Animal Crossing"], None)]),
 ("P159", "The headquarters of {} is in",
  ["{} is headquartered in", "The head office of {} is located in"],
  ["{} employs", "The history of {} began", "Investors in {} expect"],
  [("Tokyo", ["Sony", "Honda", "Hitachi", "Toshiba", "SoftBank", "Canon", "Bridgestone"], None),
   ("Paris", ["LVMH", "Hermès", "BNP Paribas", "Kering", "Dior", "Louis Vuitton", "Publicis"], None),
   ("London", ["HSBC", "BP", "Barclays", "Unilever", "Shell", "BBC", "GSK"], None),
   ("Stockholm", ["Spotify", "Ericsson", "H&M", "Electrolux", "Klarna", "Mojang"], None),
   ("New York", ["JPMorgan Chase", "Goldman Sachs", "Pfizer", "Morgan Stanley", "Citigroup", "Verizon", "BlackRock"], None)]),
 ("P1303", "{} is known for playing the",
  ["The instrument played by {} is the", "{} is a famous musician who plays the"],
  ["{} performed", "The music of {}", "{} once said that"],
  [("piano", ["Elton John", "Lang Lang", "Alicia Keys", "Billy Joel", "Herbie Hancock", "Frédéric Chopin", "Franz Liszt"], None),
   ("guitar", ["Eric Clapton", "Jimmy Page", "Carlos Santana", "Jimi Hendrix", "Keith Richards", "Mark Knopfler"], None),
   ("violin", ["Itzhak Perlman", "Joshua Bell", "Anne-Sophie Mutter", "Hilary Hahn", "Niccolò Paganini", "Yehudi Menuhin"], None),
   ("drums", ["Ringo Starr", "Travis Barker", "Lars Ulrich", "Neil Peart", "John Bonham", "Keith Moon"], None),
   ("trumpet", ["Miles Davis", "Louis Armstrong", "Dizzy Gillespie", "Wynton Marsalis", "Chet Baker", "Arturo Sandoval"], None)]),
 ("P101", "{} is known for work in the field of",
  ["The field of work of {} is", "{} made major contributions to the field of"],
  ["{} is remembered for", "The work of {} influenced", "{} spent years studying"],
  # target_new restricted to fields the subjects are clearly not known for
  [("physics", ["Albert Einstein", "Niels Bohr", "Richard Feynman", "Max Planck", "Werner Heisenberg", "Enrico Fermi"], ["biology"]),
   ("mathematics", ["Srinivasa Ramanujan", "Pierre de Fermat", "Terence Tao", "Évariste Galois", "Andrew Wiles", "Paul Erdős"], ["biology", "chemistry"]),
   ("chemistry", ["Dmitri Mendeleev", "Antoine Lavoisier", "Linus Pauling", "Fritz Haber", "Humphry Davy", "Dorothy Hodgkin"], ["philosophy"]),
   ("biology", ["Charles Darwin", "Gregor Mendel", "Alfred Russel Wallace", "Carl Linnaeus", "Jane Goodall", "Ernst Mayr"], ["mathematics", "physics"]),
   ("philosophy", ["Plato", "Socrates", "Friedrich Nietzsche", "Søren Kierkegaard", "Jean-Paul Sartre", "Confucius"], ["chemistry", "biology"])]),
 ("P27", "{} is a citizen of",
  ["{} holds the citizenship of", "The country of citizenship of {} is"],
  ["{} lives in", "{} is best known for", "News about {}"],
  [("Japan", ["Hayao Miyazaki", "Haruki Murakami", "Fumio Kishida", "Ichiro Suzuki", "Hideo Kojima", "Ken Watanabe"], None),
   ("Brazil", ["Neymar", "Luiz Inácio Lula da Silva", "Gisele Bündchen", "Ronaldinho", "Paulo Coelho", "Anitta"], None),
   ("India", ["Narendra Modi", "Shah Rukh Khan", "Sachin Tendulkar", "Virat Kohli", "Amitabh Bachchan", "A. R. Rahman"], None),
   ("Canada", ["Justin Trudeau", "Celine Dion", "Margaret Atwood", "Sidney Crosby", "Connor McDavid", "Shania Twain"], None)]),
 ("P136", "The music genre of {} is",
  ["{} is a musician associated with the genre of", "{} became famous performing"],
  ["{}'s concerts are", "Critics describe {} as", "{} recorded"],
  [("jazz", ["Duke Ellington", "John Coltrane", "Ella Fitzgerald", "Billie Holiday", "Count Basie", "Charlie Parker", "Thelonious Monk"], None),
   ("country", ["Dolly Parton", "Johnny Cash", "Garth Brooks", "Willie Nelson", "Kenny Rogers", "Reba McEntire"], None),
   ("opera", ["Luciano Pavarotti", "Plácido Domingo", "Maria Callas", "Enrico Caruso", "Renée Fleming", "Anna Netrebko"], None),
   ("rap", ["Eminem", "Jay-Z", "Kendrick Lamar", "Snoop Dogg", "Tupac Shakur", "Nas", "50 Cent"], None)]),
 ("P364", "The original language of {} is",
  ["{} was originally written in", "The language in which {} was originally created is"],
  ["{} tells the story of", "Readers and viewers of {}", "The ending of {}"],
  [("Japanese", ["Spirited Away", "My Neighbor Totoro", "Seven Samurai", "Princess Mononoke", "Rashomon", "Tokyo Story"], None),
   ("French", ["The Little Prince", "Madame Bovary", "Les Misérables", "Candide", "The Count of Monte Cristo", "The Three Musketeers"], None),
   ("Russian", ["War and Peace", "Crime and Punishment", "Anna Karenina", "The Brothers Karamazov", "Doctor Zhivago", "Eugene Onegin"], None),
   ("Spanish", ["Don Quixote", "One Hundred Years of Solitude", "Pan's Labyrinth", "Love in the Time of Cholera", "The House of the Spirits", "Pedro Páramo"], None),
   ("Italian", ["The Divine Comedy", "The Decameron", "The Name of the Rose", "Life Is Beautiful", "La Dolce Vita", "The Adventures of Pinocchio"], None)]),
]

# Objects that are more than one token for SmolLM2 (" " + object), never used as target_new.
MULTI_TOKEN = {"South America", "New York"}

def fill(t, s):
    return t.replace("{}", s)  # no capitalisation: subjects like "iPhone" keep their case

records = []
for rel, tmpl, para, gen, groups in REL:
    objs = [g[0] for g in groups]
    for gi, (obj, subjects, allowed) in enumerate(groups):
        cands = allowed or [o for o in objs[gi + 1:] + objs[:gi] if o not in MULTI_TOKEN]
        for j, s in enumerate(subjects):
            new = cands[j % len(cands)]
            assert new != obj and new not in MULTI_TOKEN
            records.append({
                "case_id": len(records),
                "requested_rewrite": {
                    "prompt": tmpl, "subject": s, "relation_id": rel,
                    "target_true": {"str": obj, "id": ""},
                    "target_new": {"str": new, "id": ""},
                },
                "paraphrase_prompts": [fill(p, s) for p in para],
                "neighborhood_prompts": [fill(tmpl, o) for o in subjects if o != s],
                "generation_prompts": [fill(g, s) for g in gen],
            })

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "counterfact-backlens.json")
with open(path, "w", encoding="utf-8") as f:
    json.dump(records, f, ensure_ascii=False, indent=1)
    f.write("\n")
print(len(records), "records")
