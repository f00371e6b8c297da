//! Membership in a set of indices given in increasing order, asked in
//! increasing order: one walk, no search per question.

/// A test `|i| i is one of sorted`, for questions asked with `i` increasing
/// (removing records or members in one pass).
pub(crate) fn sorted_membership(
    sorted: impl IntoIterator<Item = usize>,
) -> impl FnMut(usize) -> bool {
    let mut next = sorted.into_iter().peekable();
    move |i| {
        while next.next_if(|&n| n < i).is_some() {}
        next.next_if_eq(&i).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_found_in_one_walk() {
        let mut member = sorted_membership([1, 3, 4, 9]);
        let found: Vec<usize> = (0..12).filter(|&i| member(i)).collect();
        assert_eq!(found, [1, 3, 4, 9]);
        let mut skipping = sorted_membership([2, 5]);
        assert!(!skipping(4), "2 was passed over");
        assert!(skipping(5));
    }
}
