//! The e-mail templates: each mail in plain text and in HTML, from the event that asks for
//! it. Everything taken from an event is escaped in the HTML part.

use std::fmt::Write as _;

use serde::Deserialize;

/// A mail ready to send but for its recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

/// An exact amount as events carry it.
#[derive(Debug, Clone, Deserialize)]
pub struct Amount {
    /// Decimal string, such as `19.99`.
    pub amount: String,
    /// ISO 4217 code.
    pub currency: String,
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

/// A confirmed order's line.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    /// Product name when ordered.
    pub name: String,
    /// Units.
    pub quantity: i64,
    /// Price of one.
    pub unit_price: Amount,
    /// Price of all.
    pub line_total: Amount,
}

/// Where the order goes.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    /// Recipient.
    pub name: String,
    /// Street.
    pub line1: String,
    /// Flat, floor.
    pub line2: Option<String>,
    /// City.
    pub city: String,
    /// Postal code.
    pub postal_code: String,
    /// Country code.
    pub country: String,
}

impl Address {
    fn lines(&self) -> Vec<String> {
        let mut out = vec![self.name.clone(), self.line1.clone()];
        out.extend(self.line2.clone());
        out.push(format!("{} {}", self.postal_code, self.city));
        out.push(self.country.clone());
        out
    }
}

/// What the confirmation says (from `order.confirmed`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Confirmation {
    /// Order number.
    pub number: String,
    /// Lines.
    pub lines: Vec<Line>,
    /// Sum of the lines.
    pub subtotal: Amount,
    /// What is paid.
    pub total: Amount,
    /// Where it goes.
    pub shipping_address: Address,
}

/// What the shipping notice says (from `shipment.shipped`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shipping {
    /// Order number.
    pub order_number: String,
    /// Carrier.
    pub carrier: String,
    /// Tracking number.
    pub tracking_number: String,
}

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The HTML frame every mail shares.
fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n\
         <body style=\"font-family: sans-serif; color: #222\">\n{body}\n\
         <p style=\"color: #777\">Better Store</p>\n</body></html>\n",
        esc(title)
    )
}

/// The order confirmation: number, lines, totals and shipping address.
pub fn order_confirmation(order: &Confirmation) -> Rendered {
    let subject = format!("Your order {} is confirmed", order.number);
    let mut text = format!(
        "Hello {},\n\nThank you for your order {}. Here is what you bought:\n\n",
        order.shipping_address.name, order.number
    );
    let mut rows = String::new();
    for line in &order.lines {
        let _ = writeln!(
            text,
            "  {} x {} at {} = {}",
            line.quantity, line.name, line.unit_price, line.line_total
        );
        let _ = write!(
            rows,
            "<tr><td>{}</td><td style=\"text-align: right\">{}</td>\
             <td style=\"text-align: right\">{}</td><td style=\"text-align: right\">{}</td></tr>",
            esc(&line.name),
            line.quantity,
            esc(&line.unit_price.to_string()),
            esc(&line.line_total.to_string())
        );
    }
    let _ = write!(
        text,
        "\nSubtotal: {}\nTotal: {}\n\nIt will be sent to:\n  {}\n\n\
         We will write again when it ships.\n\n-- \nBetter Store\n",
        order.subtotal,
        order.total,
        order.shipping_address.lines().join("\n  ")
    );
    let address: Vec<String> = order.shipping_address.lines().iter().map(|l| esc(l)).collect();
    let html = page(
        &subject,
        &format!(
            "<h1>Thank you for your order</h1>\n<p>Hello {}, your order <strong>{}</strong> is \
             confirmed.</p>\n<table cellpadding=\"4\"><tr><th>Product</th><th>Qty</th>\
             <th>Price</th><th>Total</th></tr>{rows}</table>\n<p>Subtotal: {}<br>\
             <strong>Total: {}</strong></p>\n<p>It will be sent to:<br>{}</p>\n\
             <p>We will write again when it ships.</p>",
            esc(&order.shipping_address.name),
            esc(&order.number),
            esc(&order.subtotal.to_string()),
            esc(&order.total.to_string()),
            address.join("<br>")
        ),
    );
    Rendered { subject, text, html }
}

/// The shipping notice: carrier and tracking number.
pub fn shipping(parcel: &Shipping) -> Rendered {
    let subject = format!("Your order {} has shipped", parcel.order_number);
    let text = format!(
        "Hello,\n\nYour order {} is on its way with {}.\nTracking number: {}\n\n-- \nBetter Store\n",
        parcel.order_number, parcel.carrier, parcel.tracking_number
    );
    let html = page(
        &subject,
        &format!(
            "<h1>Your order is on its way</h1>\n<p>Your order <strong>{}</strong> has shipped \
             with {}.</p>\n<p>Tracking number: <strong>{}</strong></p>",
            esc(&parcel.order_number),
            esc(&parcel.carrier),
            esc(&parcel.tracking_number)
        ),
    );
    Rendered { subject, text, html }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(a: &str) -> Amount {
        Amount { amount: a.into(), currency: "EUR".into() }
    }

    #[test]
    fn the_confirmation_lists_lines_totals_and_address_and_escapes_html() {
        let order = Confirmation {
            number: "BS-7K3F9Q2M".into(),
            lines: vec![Line {
                name: "Tea <Earl Grey> & co".into(),
                quantity: 2,
                unit_price: amount("4.50"),
                line_total: amount("9.00"),
            }],
            subtotal: amount("9.00"),
            total: amount("9.00"),
            shipping_address: Address {
                name: "Ada".into(),
                line1: "12 Analytical Way".into(),
                line2: None,
                city: "London".into(),
                postal_code: "N1 7AA".into(),
                country: "GB".into(),
            },
        };
        let mail = order_confirmation(&order);
        assert_eq!(mail.subject, "Your order BS-7K3F9Q2M is confirmed");
        assert!(mail.text.contains("2 x Tea <Earl Grey> & co at 4.50 EUR = 9.00 EUR"));
        assert!(mail.text.contains("Total: 9.00 EUR") && mail.text.contains("N1 7AA London"));
        assert!(mail.html.contains("Tea &lt;Earl Grey&gt; &amp; co"));
        assert!(!mail.html.contains("<Earl Grey>"));
    }

    #[test]
    fn the_shipping_notice_carries_the_tracking_number() {
        let parcel = Shipping {
            order_number: "BS-7K3F9Q2M".into(),
            carrier: "Better Parcel".into(),
            tracking_number: "BSP000000000042".into(),
        };
        let mail = shipping(&parcel);
        assert!(mail.subject.contains("BS-7K3F9Q2M"));
        assert!(mail.text.contains("BSP000000000042") && mail.html.contains("BSP000000000042"));
    }
}
