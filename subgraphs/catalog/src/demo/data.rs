//! The words and numbers the demo catalog is generated from.

/// Products generated per leaf category.
pub(super) const PER_LEAF: usize = 24;

pub(super) struct Leaf {
    pub(super) name: &'static str,
    pub(super) nouns: &'static [&'static str],
    pub(super) price: (i64, i64),
    pub(super) attribute: (&'static str, &'static [&'static str]),
}

pub(super) struct Branch {
    pub(super) name: &'static str,
    pub(super) groups: &'static [(&'static str, &'static [Leaf])],
}

pub(super) const COLORS: &[&str] =
    &["Black", "Navy", "Olive", "Sand", "Slate", "Rust", "White", "Forest"];
pub(super) const SIZES: &[&str] = &["XS", "S", "M", "L", "XL"];

pub(super) static TREE: &[Branch] = &[
    Branch {
        name: "Apparel",
        groups: &[
            (
                "Men",
                &[
                    Leaf {
                        name: "T-Shirts",
                        nouns: &["Crew Tee", "Pocket Tee", "Henley", "Long Sleeve Tee"],
                        price: (15, 45),
                        attribute: ("Size", SIZES),
                    },
                    Leaf {
                        name: "Jackets",
                        nouns: &["Rain Shell", "Down Jacket", "Field Jacket", "Softshell"],
                        price: (80, 320),
                        attribute: ("Color", COLORS),
                    },
                ],
            ),
            (
                "Women",
                &[
                    Leaf {
                        name: "Dresses",
                        nouns: &["Wrap Dress", "Shirt Dress", "Midi Dress", "Sundress"],
                        price: (40, 180),
                        attribute: ("Size", SIZES),
                    },
                    Leaf {
                        name: "Knitwear",
                        nouns: &["Cardigan", "Merino Sweater", "Cable Knit", "Turtleneck"],
                        price: (50, 220),
                        attribute: ("Color", COLORS),
                    },
                ],
            ),
            (
                "Accessories",
                &[Leaf {
                    name: "Bags",
                    nouns: &["Tote", "Daypack", "Messenger Bag", "Duffel"],
                    price: (25, 260),
                    attribute: ("Color", COLORS),
                }],
            ),
        ],
    },
    Branch {
        name: "Footwear",
        groups: &[
            (
                "Running Shoes",
                &[
                    Leaf {
                        name: "Road Running",
                        nouns: &["Road Racer", "Tempo Trainer", "Daily Trainer"],
                        price: (90, 220),
                        attribute: ("Drop", &["4 mm", "6 mm", "8 mm", "10 mm"]),
                    },
                    Leaf {
                        name: "Trail Running",
                        nouns: &["Trail Runner", "Mountain Racer", "Fell Shoe"],
                        price: (100, 240),
                        attribute: ("Lug Depth", &["3 mm", "4 mm", "5 mm", "6 mm"]),
                    },
                ],
            ),
            (
                "Boots",
                &[Leaf {
                    name: "Hiking Boots",
                    nouns: &["Hiking Boot", "Approach Shoe", "Backpacking Boot"],
                    price: (110, 330),
                    attribute: ("Waterproof", &["Yes", "No"]),
                }],
            ),
        ],
    },
    Branch {
        name: "Electronics",
        groups: &[
            (
                "Audio",
                &[
                    Leaf {
                        name: "Headphones",
                        nouns: &["Over-Ear Headphones", "Earbuds", "Studio Monitor Headphones"],
                        price: (30, 450),
                        attribute: ("Noise Cancelling", &["Yes", "No"]),
                    },
                    Leaf {
                        name: "Speakers",
                        nouns: &["Bookshelf Speaker", "Portable Speaker", "Soundbar"],
                        price: (40, 600),
                        attribute: ("Connectivity", &["Bluetooth", "Wi-Fi", "Wired"]),
                    },
                ],
            ),
            (
                "Computing",
                &[
                    Leaf {
                        name: "Keyboards",
                        nouns: &["Mechanical Keyboard", "Low Profile Keyboard", "Split Keyboard"],
                        price: (45, 280),
                        attribute: ("Switches", &["Linear", "Tactile", "Clicky"]),
                    },
                    Leaf {
                        name: "Monitors",
                        nouns: &["27-inch Monitor", "Ultrawide Monitor", "Portable Monitor"],
                        price: (150, 1200),
                        attribute: ("Resolution", &["1440p", "4K", "5K"]),
                    },
                ],
            ),
            (
                "Cameras",
                &[Leaf {
                    name: "Mirrorless Cameras",
                    nouns: &["Mirrorless Camera", "Compact Camera", "Action Camera"],
                    price: (200, 2400),
                    attribute: ("Sensor", &["APS-C", "Full Frame", "1-inch"]),
                }],
            ),
        ],
    },
    Branch {
        name: "Home & Kitchen",
        groups: &[
            (
                "Cookware",
                &[
                    Leaf {
                        name: "Pans",
                        nouns: &["Cast Iron Skillet", "Carbon Steel Pan", "Saute Pan", "Wok"],
                        price: (25, 240),
                        attribute: ("Diameter", &["20 cm", "24 cm", "28 cm", "32 cm"]),
                    },
                    Leaf {
                        name: "Knives",
                        nouns: &["Chef Knife", "Paring Knife", "Bread Knife", "Santoku"],
                        price: (20, 300),
                        attribute: ("Steel", &["VG-10", "Carbon", "Stainless"]),
                    },
                ],
            ),
            (
                "Coffee & Tea",
                &[Leaf {
                    name: "Coffee Makers",
                    nouns: &["Pour-Over Set", "French Press", "Espresso Machine", "Burr Grinder"],
                    price: (20, 900),
                    attribute: ("Capacity", &["1 cup", "4 cups", "8 cups"]),
                }],
            ),
            (
                "Furniture",
                &[Leaf {
                    name: "Chairs",
                    nouns: &["Desk Chair", "Lounge Chair", "Dining Chair"],
                    price: (90, 1100),
                    attribute: ("Material", &["Oak", "Walnut", "Steel", "Wool"]),
                }],
            ),
        ],
    },
    Branch {
        name: "Outdoors",
        groups: &[
            (
                "Camping",
                &[
                    Leaf {
                        name: "Tents",
                        nouns: &["Backpacking Tent", "Family Tent", "Bivy Shelter"],
                        price: (120, 750),
                        attribute: ("Capacity", &["1 person", "2 person", "4 person"]),
                    },
                    Leaf {
                        name: "Sleeping Bags",
                        nouns: &["Down Sleeping Bag", "Synthetic Quilt", "Sleeping Pad"],
                        price: (60, 520),
                        attribute: ("Rating", &["-5 C", "0 C", "5 C"]),
                    },
                ],
            ),
            (
                "Cycling",
                &[Leaf {
                    name: "Bike Lights",
                    nouns: &["Front Light", "Rear Light", "Light Set"],
                    price: (15, 160),
                    attribute: ("Lumens", &["200", "600", "1200"]),
                }],
            ),
        ],
    },
    Branch {
        name: "Books",
        groups: &[
            (
                "Fiction",
                &[Leaf {
                    name: "Science Fiction",
                    nouns: &["Space Opera", "Cyberpunk Novel", "First Contact Novel"],
                    price: (9, 35),
                    attribute: ("Format", &["Paperback", "Hardcover"]),
                }],
            ),
            (
                "Technology",
                &[Leaf {
                    name: "Programming",
                    nouns: &["Rust Handbook", "Systems Design Guide", "Database Internals Primer"],
                    price: (25, 75),
                    attribute: ("Format", &["Paperback", "Hardcover", "E-book"]),
                }],
            ),
            (
                "Cooking",
                &[Leaf {
                    name: "Cookbooks",
                    nouns: &["Baking Book", "Weeknight Cookbook", "Fermentation Guide"],
                    price: (15, 55),
                    attribute: ("Format", &["Paperback", "Hardcover"]),
                }],
            ),
        ],
    },
];

pub(super) const BRANDS: &[&str] =
    &["Northwind", "Fernhill", "Bluepeak", "Lumen", "Oakline", "Kestrel", "Tidewater", "Granite"];
pub(super) const ADJECTIVES: &[&str] = &[
    "Classic",
    "Everyday",
    "Pro",
    "Ultralight",
    "Heritage",
    "Urban",
    "Summit",
    "Coastal",
    "Nordic",
    "Studio",
    "Essential",
    "Voyager",
];
pub(super) const PRAISE: &[&str] = &[
    "carefully made",
    "built to last",
    "designed for daily use",
    "tested in the field",
    "made with recycled materials",
    "backed by a two-year warranty",
];
pub(super) const TITLES: [&[&str]; 5] = [
    &["Disappointing", "Not for me", "Broke quickly"],
    &["Below expectations", "Just okay", "Some issues"],
    &["Decent value", "Does the job", "Mixed feelings"],
    &["Very good", "Happy with it", "Solid choice"],
    &["Excellent", "Love it", "Best purchase this year"],
];
pub(super) const BODIES: [&[&str]; 5] = [
    &[
        "It did not hold up to normal use and I returned it.",
        "The quality is not what the photos suggest.",
    ],
    &["Works, but the finish feels cheap for the price.", "Sizing and fit were off for me."],
    &[
        "Fine for the price. Nothing special, nothing wrong.",
        "Does what it says; I expected a bit more.",
    ],
    &[
        "Well made and comfortable. Would buy again.",
        "Good quality, arrived quickly, as described.",
    ],
    &["Outstanding quality and attention to detail.", "Exceeded my expectations in every way."],
];
